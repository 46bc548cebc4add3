/**
 * Compatibility entry point: the repository now lives in `lib/repository/` (one module per
 * concern, see its `mod.ts`). Import from there; this file only re-exports it.
 *
 * @module
 */
export * from "./repository/mod.ts";
