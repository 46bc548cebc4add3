/**
 * Where an image comes from, behind one interface: an {@link ImageSource} gives the
 * resolved image (manifest, config and layers, each digest already checked) and streams
 * each layer's uncompressed tar with its blob digest, size and diff_id checked while it
 * streams. pull.ts only talks to this interface.
 *
 * - `oci:DIR[:TAG]`: the layout is read in place.
 * - `oci-archive:FILE[:TAG]`: the archive is unpacked into a temporary directory (archive.ts,
 *   with GNU tar, which refuses `..` member names) and read as a layout; errors name the
 *   archive, not the temporary directory.
 * - `docker://...`: the native registry client (registry.ts), no skopeo needed; time limits
 *   and retries from {@link SourceOptions.transfer} (transfer.ts).
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
 * With {@link SourceOptions.signaturePolicy}, the containers signature policy decides once the
 * image is resolved and before any layer is read (lib/signature/check.ts); skopeo gets the same
 * policy for the transports it reads.
 *
 * @module
 */
import { join } from "node:path";
import { OciArchiveError, unpackOciArchive } from "./archive.ts";
import { formatImageReference, type ImageReference, parseImageReference } from "./reference.ts";
import {
  type LayerDescriptor,
  OciLayout,
  OciLayoutError,
  type Platform,
  type ResolvedImage,
} from "./layout.ts";
import { RegistryClient } from "./registry.ts";
import { skopeoCopyToLayout } from "./skopeo.ts";
import type { TransferOptions } from "./transfer.ts";
import type { TarInput } from "./tar.ts";
import {
  enforceSignaturePolicy,
  type SignaturePolicyOptions,
  skopeoPolicyArgs,
} from "../signature/check.ts";
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
  /**
   * Registry time limits and retries (`docker://`; transfer.ts). For transports read through
   * skopeo, `retries` is its `--retry-times` and `timeoutMs` ends the copy.
   */
  transfer?: TransferOptions;
  /** Hears of each registry retry (one line: what failed, how long it waits). */
  onRetry?: (message: string) => void;
  /**
   * Enforce the containers signature policy (lib/signature/check.ts). Undefined: no check (a
   * library caller's choice; the CLI always enforces).
   */
  signaturePolicy?: SignaturePolicyOptions;
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

/**
 * `work`'s result; a layout error about the temporary directory an archive was unpacked into
 * is said of the archive instead (the directory is gone by the time anyone reads the message).
 */
async function namingArchive<T>(archive: string, dir: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof OciLayoutError) || e.dir !== dir) throw e;
    const detail = e.message.slice(`OCI layout ${dir}: `.length).replaceAll(`${dir}/`, "")
      .replaceAll(dir, "(archive)");
    throw new OciArchiveError(archive, detail, { cause: e });
  }
}

/**
 * `source` once the signature policy accepted it (when there is one to enforce); closed (its
 * temporary files removed) when it did not.
 */
async function checked(
  parsed: ImageReference,
  source: ImageSource,
  options: SourceOptions,
): Promise<ImageSource> {
  if (options.signaturePolicy === undefined) return source;
  try {
    await enforceSignaturePolicy(
      { reference: source.reference, parsed, image: source.image },
      options.signaturePolicy,
    );
  } catch (e) {
    await source.close();
    throw e;
  }
  return source;
}

/** skopeo's `--policy` and `--registries.d` for the policy to enforce (none: skopeo's default). */
async function policyArgs(options: SourceOptions): Promise<string[] | undefined> {
  return options.signaturePolicy ? await skopeoPolicyArgs(options.signaturePolicy) : undefined;
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
      return await checked(
        parsed,
        await layoutSource(reference, parsed.path, parsed.tag, options),
        options,
      );
    case "oci-archive": {
      const dir = await Deno.makeTempDir({ prefix: "cfs-oci-archive-" });
      try {
        await unpackOciArchive(parsed.path, dir);
      } catch (e) {
        await removeDir(dir)();
        throw e;
      }
      const source = await namingArchive(
        parsed.path,
        dir,
        () => layoutSource(reference, dir, parsed.tag, options, removeDir(dir)),
      );
      return await checked(parsed, {
        ...source,
        openLayer: (layer, onBytes) =>
          namingArchive(parsed.path, dir, () => source.openLayer(layer, onBytes)),
      }, options);
    }
    case "docker": {
      const client = new RegistryClient(parsed.domain, {
        ...options.transfer,
        tlsVerify: options.tlsVerify,
        authFiles: options.authFile ? [options.authFile] : undefined,
        onRetry: options.onRetry,
      });
      const image = await client.resolve(parsed, { platform: options.platform });
      if (options.signaturePolicy) {
        await enforceSignaturePolicy(
          { reference, parsed, image, client },
          options.signaturePolicy,
        );
      }
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
          const storage = openStorageSource(reference, parsed.name, {
            storageRoot: options.storageRoot,
          });
          return await checked(parsed, storage, options);
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
          timeoutMs: options.transfer?.timeoutMs,
          policyArgs: await policyArgs(options),
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
          retries: options.transfer?.retries,
          timeoutMs: options.transfer?.timeoutMs,
          policyArgs: await policyArgs(options),
        });
      } catch (e) {
        await removeDir(dir)();
        throw e;
      }
      return await layoutSource(reference, dir, TEMP_TAG, options, removeDir(dir));
    }
  }
}
