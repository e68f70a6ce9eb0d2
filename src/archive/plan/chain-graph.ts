import type { ManifestSummary, ManifestSubstream } from '../format/manifest.js';

/**
 * The stream graph the planners share: snapshots are nodes (by GUID), each stream contributes
 * fromguid → toguid links. Built here once, so the restore planner, retention, chains and the
 * snapshot order cannot disagree on what a link is. Pure.
 *
 * - A plain or `-I` stream gives one link per substream (a `-I` stream can be cut between them).
 * - A multi-dataset (`-R`) package is one whole link from its first base to its own dataset's last
 *   snapshot: the children's substreams are not links of this dataset, and the package cannot be
 *   cut into parts.
 */

/** One fromguid → toguid step. */
export interface Link {
  manifest: ManifestSummary;
  /** Index of the substream the link ends at (for a whole -R package: the last substream). */
  index: number;
  from: string;
  to: string;
  raw: boolean;
  /** A clone's stream: its base is the origin, a snapshot of another dataset. */
  clone: boolean;
  /** Whole-only streams (multi-dataset -R packages) cannot be cut into parts. */
  wholeOnly: boolean;
  /** `pool/fs@snap` and creation time of the snapshot the link leads to. */
  toname: string;
  creation: string;
}

const datasetOf = (toname: string) => toname.slice(0, toname.indexOf('@'));

/** The substreams of a stream that belong to its own dataset (a -R package also holds children). */
export function mainSubstreams(m: ManifestSummary): ManifestSubstream[] {
  const own = datasetOf(m.substreams[0]?.toname ?? '@');
  return m.substreams.filter((s) => datasetOf(s.toname) === own);
}

function substreamLink(m: ManifestSummary, s: ManifestSubstream, index: number): Link {
  return { manifest: m, index, from: s.fromguid, to: s.toguid, raw: s.raw, clone: s.clone, wholeOnly: false, toname: s.toname, creation: s.creation };
}

/** The links of one stream, in its order (see the header: -R packages are one whole link). */
export function linksOf(m: ManifestSummary): Link[] {
  const own = mainSubstreams(m);
  if (own.length !== m.substreams.length) {
    const last = own.at(-1)!;
    const first = m.substreams[0]!;
    return [{ manifest: m, index: m.substreams.length - 1, from: first.fromguid, to: last.toguid, raw: m.raw, clone: first.clone, wholeOnly: true, toname: last.toname, creation: last.creation }];
  }
  return m.substreams.map((s, index) => substreamLink(m, s, index));
}

/**
 * One link per own substream, -R packages included: for ordering snapshots (snapshot-order.ts),
 * where every own snapshot of a package is a node even though restore cannot stop at it.
 */
export function ownLinksOf(m: ManifestSummary): Link[] {
  const own = new Set(mainSubstreams(m));
  return m.substreams.flatMap((s, index) => (own.has(s) ? [substreamLink(m, s, index)] : []));
}

function indexBy(links: readonly Link[], key: (l: Link) => string): Map<string, Link[]> {
  const out = new Map<string, Link[]>();
  for (const l of links) {
    const list = out.get(key(l));
    if (list) list.push(l);
    else out.set(key(l), [l]);
  }
  return out;
}

/** Links by their base GUID, each list in the input order (searches keep the first of equals). */
export function linksByFrom(links: readonly Link[]): Map<string, Link[]> {
  return indexBy(links, (l) => l.from);
}

/** Links by the GUID they lead to, each list in the input order. */
export function linksByTo(links: readonly Link[]): Map<string, Link[]> {
  return indexBy(links, (l) => l.to);
}

/**
 * Every snapshot GUID any substream of a stream leads to (children of a -R package too) → that
 * stream; a later stream wins. What "a stream's base is archived" means for chains.ts.
 */
export function streamsByToGuid(streams: readonly ManifestSummary[]): Map<string, ManifestSummary> {
  const out = new Map<string, ManifestSummary>();
  for (const m of streams) for (const s of m.substreams) out.set(s.toguid, m);
  return out;
}

/** The GUID a stream starts from: '0' for a full. */
export function baseOf(m: ManifestSummary): string {
  return m.substreams[0]?.fromguid ?? '0';
}
