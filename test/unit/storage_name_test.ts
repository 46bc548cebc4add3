/**
 * The names `cfs pull --unified` gives images it copies into its containers-storage
 * ({@link storageImageName}): valid repository names for any path, podman's own name where
 * podman can derive one (test/unified_storage_test.ts checks that against podman itself).
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { storageImageName } from "../../lib/pipeline/unified.ts";

/**
 * containers-image's grammar for a name with a tag (docker/reference, written out here):
 * `domain/component(/component)*:tag`, components `[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*`.
 */
const NAMED_TAGGED = /^localhost(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)+:[\w][\w.-]{0,127}$/;

Deno.test("storageImageName: a lower-case path keeps podman's localhost/PATH:latest", () => {
  equal(storageImageName("oci:/srv/images/os:v1"), "localhost/srv/images/os:latest");
  equal(storageImageName("oci:/srv/images/os"), "localhost/srv/images/os:latest");
  equal(storageImageName("oci-archive:/srv/os.tar:v1"), "localhost/srv/os.tar:latest");
  equal(storageImageName("dir:/srv/copy_1"), "localhost/srv/copy_1:latest");
});

Deno.test("storageImageName: upper case, spaces, '+' and odd separators become a valid name", () => {
  equal(storageImageName("oci:/srv/My Images/OS+1:v1"), "localhost/srv/my-images/os-1:latest");
  equal(storageImageName("oci:/tmp/A..B/-x-/._y_./é"), "localhost/tmp/a-b/x/y:latest");
  for (
    const ref of [
      "oci:/Upper/CASE",
      "oci:/a b/c\u00a0d",
      "oci:/x/__/--/..",
      "oci:/srv/a.-b_.c",
      "oci-archive:/T/Archive.TAR",
    ]
  ) {
    const name = storageImageName(ref)!;
    ok(NAMED_TAGGED.test(name), `${ref} -> ${name}`);
  }
});

Deno.test("storageImageName: relative paths are resolved; a path too long for a name is hashed", () => {
  const dir = Deno.makeTempDirSync({ prefix: "cfs-names-" }); // lower case: /tmp/cfs-names-HEX
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    equal(storageImageName("oci:layout:v1"), `localhost${dir}/layout:latest`);
  } finally {
    Deno.chdir(cwd);
    Deno.removeSync(dir);
  }
  const long = "oci:/" + "directory/".repeat(40) + "layout";
  const name = storageImageName(long)!;
  ok(/^localhost\/cfs-image-[0-9a-f]{16}:latest$/.test(name), name);
  equal(storageImageName(long), name, "the same path, the same name");
  ok(storageImageName(long + "2") !== name);
});

Deno.test("storageImageName: registry and storage references name themselves", () => {
  equal(storageImageName("docker://quay.io/a/b:1"), undefined);
  equal(storageImageName("containers-storage:quay.io/a/b:1"), undefined);
  equal(storageImageName("docker-archive:/x.tar"), undefined);
});
