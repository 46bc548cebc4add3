/**
 * The QEMU building blocks moved to `lib/vm/qemu.ts` (`cfs vm-test` uses them too); this
 * module keeps the tests' import path.
 *
 * @module
 */
export * from "../../lib/vm/qemu.ts";
