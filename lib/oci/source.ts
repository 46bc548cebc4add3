/**
 * Where an image comes from, behind one interface: an {@link ImageSource} gives the
 * resolved image (manifest, config and layers, each digest already checked) and streams
 * each layer's uncompressed tar with its blob digest, size and diff_id checked while it
 * streams. pull.ts only talks to this interface.
 *
 * - `oci:DIR[:TAG]`: the layout is read in place.
 * - `oci-archive:FILE[:TAG]`: the archive is unpacked into a temporary directory (with
 *   `tar`, which refuses `..` and absolute member names) and read as a layout.
 * - `docker://...`: the native registry client (registry.ts), no skopeo needed.
 * - `containers-storage:[SPEC]NAME`: read straight from the store (cstorage.ts: metadata,
 *   tar-split data and the layer files; no podman or skopeo), so bodies can be reflinked or
 *   hard-linked into the repository. With `localFetch: "disabled"`, or in `auto` mode when
 *   there is no store cfs can read there (another driver, no such directory), through
 *   `skopeo copy` like the transports below.
 * - every other containers-image transport: `skopeo copy` into a temporary layout
 *   (skopeo.ts), then read as a layout.
 *
 * Temporary directories are made next to nothing of the repository's and removed by
 * {@link ImageSource.close}, also when the pull fails.
 *
 * @module
 */
import $ from "dax";
import { join } from "node:path";
import { formatImageReference, type ImageReference, parseImageReference } from "./reference.ts";
import { type LayerDescriptor, OciLayout, type Platform, type ResolvedImage } from "./layout.ts";
import { RegistryClient } from "./registry.ts";
import { skopeoCopyToLayout } from "./skopeo.ts";
import type { TarInput } from "./tar.ts";
import { ContainersStorageError, openStorageSource, parseStorageReference } from "./cstorage.ts";

/**
 * composefs-rs `LocalFetchOpt` for `containers-storage:` sources: `disabled` reads through
 * skopeo (a copy); `auto` reads the store directly and reflinks, hard-links or copies each
 * object; `zerocopy` too, but fails when an object can be neither reflinked nor hard-linked.
 */
export type LocalFetchMode = "disabled" | "auto" | "zerocopy";

/** Options for {@link openImageSource}. */
export interface SourceOptions {
  /** The platform to pick from an image index; default: the host's. */
  platform?: Platform;
  /** `false`: plain HTTP to the registry (`--tls-verify=false`). Default true. */
  tlsVerify?: boolean;
  /** An auth file to use instead of the containers defaults. */
  authFile?: string;
  /** `containers-storage:` only: how to read the store; default `auto`. */
  localFetch?: LocalFetchMode;
  /** `containers-storage:` only: the store's root (else the reference's, else the default). */
  storageRoot?: string;
  /** Hears why a `containers-storage:` source falls back to skopeo (auto mode). */
  onFallback?: (message: string) => void;
}

/** A resolved image and a way to stream its layers. */
export interface ImageSource {
  /** The reference as given. */
  readonly reference: string;
  /** Manifest, config and layers, digests checked. */
  readonly image: ResolvedImage;
  /**
   * The uncompressed tar of one of {@link image}'s layers, checked while it streams;
   * `onCompressedBytes` counts the blob's bytes as they are read (progress).
   */
  openLayer(layer: LayerDescriptor, onCompressedBytes?: (n: number) => void): Promise<TarInput>;
  /** Releases temporary files. Safe to call twice. */
  close(): Promise<void>;
}

/** Tag used inside temporary layouts. */
const TEMP_TAG = "cfs";

async function layoutSource(
  reference: string,
  dir: string,
  tag: string | undefined,
  options: SourceOptions,
  cleanup: () => Promise<void> = async () => {},
): Promise<ImageSource> {
  try {
    const layout = await OciLayout.open(dir);
    const image = await layout.resolve({ tag, platform: options.platform });
    let closed = false;
    return {
      reference,
      image,
      openLayer: (layer, onBytes) => layout.openLayer(layer, onBytes),
      close: async () => {
        if (closed) return;
        closed = true;
        await cleanup();
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

function removeDir(dir: string): () => Promise<void> {
  return async () => {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
}

/** Opens the image `ref` names; see the module documentation for each transport. */
export async function openImageSource(
  ref: string | ImageReference,
  options: SourceOptions = {},
): Promise<ImageSource> {
  const parsed = typeof ref === "string" ? parseImageReference(ref) : ref;
  const reference = typeof ref === "string" ? ref : formatImageReference(ref);
  switch (parsed.transport) {
    case "oci":
      return await layoutSource(reference, parsed.path, parsed.tag, options);
    case "oci-archive": {
      const dir = await Deno.makeTempDir({ prefix: "cfs-oci-archive-" });
      try {
        const r = await $`tar -xf ${parsed.path} -C ${dir} --no-same-owner --no-same-permissions`
          .stdout("null").stderr("piped").noThrow();
        if (r.code !== 0) {
          const last = r.stderr.trim().split("\n").pop() ?? "";
          throw new Error(`'${reference}': cannot unpack the archive: ${last.slice(0, 300)}`);
        }
      } catch (e) {
        await removeDir(dir)();
        throw e;
      }
      return await layoutSource(reference, dir, parsed.tag, options, removeDir(dir));
    }
    case "docker": {
      const client = new RegistryClient(parsed.domain, {
        tlsVerify: options.tlsVerify,
        authFiles: options.authFile ? [options.authFile] : undefined,
      });
      const image = await client.resolve(parsed, { platform: options.platform });
      return {
        reference,
        image,
        openLayer: (layer, onBytes) => client.openLayer(image.repository, layer, onBytes),
        close: async () => {},
      };
    }
    case "containers-storage": {
      const mode = options.localFetch ?? "auto";
      if (mode !== "disabled") {
        try {
          return openStorageSource(reference, parsed.name, { storageRoot: options.storageRoot });
        } catch (e) {
          if (!(e instanceof ContainersStorageError && e.unavailable && mode === "auto")) throw e;
          options.onFallback?.(`${e.message}; reading it through skopeo`);
        }
      }
      const dir = await Deno.makeTempDir({ prefix: "cfs-skopeo-" });
      let source = `containers-storage:${parsed.name}`;
      if (options.storageRoot !== undefined) {
        const spec = parseStorageReference(parsed.name);
        source =
          `containers-storage:[${spec.driver ?? "overlay"}@${options.storageRoot}+${dir}/run]` +
          spec.name;
      }
      try {
        await skopeoCopyToLayout(source, join(dir, "layout"), TEMP_TAG, {
          platform: options.platform,
        });
      } catch (e) {
        await removeDir(dir)();
        throw e;
      }
      return await layoutSource(reference, join(dir, "layout"), TEMP_TAG, options, removeDir(dir));
    }
    case "other": {
      const dir = await Deno.makeTempDir({ prefix: "cfs-skopeo-" });
      const source = `${parsed.name}:${parsed.reference}`;
      try {
        await skopeoCopyToLayout(source, dir, TEMP_TAG, {
          tlsVerify: options.tlsVerify,
          authFile: options.authFile,
          platform: options.platform,
        });
      } catch (e) {
        await removeDir(dir)();
        throw e;
      }
      return await layoutSource(reference, dir, TEMP_TAG, options, removeDir(dir));
    }
  }
}
