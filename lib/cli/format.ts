/**
 * Text layout for people: aligned tables, names shortened with a visible mark, digests cut to
 * the prefix cfs accepts back, times relative to now. Pure.
 *
 * @module
 */

/** The digits of an image ID shown by default (as podman and docker show them). */
export const SHORT_ID_LENGTH = 12;

/** The longest name a table shows whole without `--no-trunc` (a bootc tag is 87). */
export const NAME_WIDTH = 40;

/** `sha256:HEX` or `HEX` cut to {@link SHORT_ID_LENGTH} hex digits. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, SHORT_ID_LENGTH);
}

/** `text` cut to `width` columns, with `…` as the last one when it was cut. */
export function clipEnd(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join("")}…`;
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart. */
export function formatTable(header: readonly string[], rows: readonly string[][]): string[] {
  const len = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(len(h), ...rows.map((r) => len(r[i]))));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c + " ".repeat(widths[i] - len(c)))
      .join("  ");
  return [line(header), ...rows.map(line)];
}

/** `5 seconds ago`, `3 days ago`, `2 years ago`; `-` for no or an unreadable time. */
export function timeAgo(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(t)) return "-";
  const s = Math.max(0, Math.floor((now - t) / 1000));
  const units: Array<[string, number]> = [
    ["year", 365 * 86400],
    ["month", 30 * 86400],
    ["week", 7 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  for (const [name, size] of units) {
    const n = Math.floor(s / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? "" : "s"} ago`;
  }
  return `${s} second${s === 1 ? "" : "s"} ago`;
}
