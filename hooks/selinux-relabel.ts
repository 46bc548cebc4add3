/**
 * `selinux-relabel`: sets `security.selinux` on every inode of the merged tree from the
 * image's own policy: `SELINUXTYPE` from `/etc/selinux/config`, then
 * `/etc/selinux/<SELINUXTYPE>/contexts/files/file_contexts` (with `.local`, `.homedirs`
 * and the `.subs`/`.subs_dist` aliases). A path whose last matching rule is `<<none>>`, or
 * that no rule matches, loses its label. It runs after `label`, so it is the last word on
 * labels before the image is written. An image without a policy is left as it is (logged).
 *
 * Matching is lib/boot/selinux.ts's (composefs-boot's rules: the last matching line wins).
 *
 * No options.
 *
 * ```json
 * { "hooks": { "selinux-relabel": {} } }
 * ```
 *
 * @module
 */
import type { Hook } from "./types.ts";
import { loadImagePolicy, relabelTree } from "../lib/boot/selinux.ts";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export default {
  name: "selinux-relabel",
  after: {
    label: (ctx) => {
      const tree = ctx.tree;
      if (!tree) throw new Error("no tree after the label stage");
      const repository = ctx.repository;
      const policy = loadImagePolicy(tree, (content) => {
        if (!repository) throw new Error("no repository to read policy files from");
        return repository.readObject(hex(content.digest));
      });
      if (!policy) {
        ctx.log.info(
          "no SELinux policy in the image (etc/selinux/config); labels left as they are",
        );
        return;
      }
      // libselinux precedence: the labels setfiles/restorecon would set.
      relabelTree(tree.root, policy.withLibselinuxPrecedence());
      ctx.log.info("relabelled the tree from the image's SELinux policy", {
        CFS_SELINUX_RULES: policy.rules.length,
      });
    },
  },
} satisfies Hook;
