import { describe, expect, it } from 'vitest';
import { buildChains } from '../../src/archive/plan/chains.js';
import { makeStreamId } from '../../src/archive/format/keys.js';
import type { Manifest, ManifestSummary } from '../../src/archive/format/manifest.js';
import { planRestore } from '../../src/archive/plan/restore-plan.js';
import { planRetention, type RetentionPolicy } from '../../src/archive/plan/retention.js';
import { orderSnapshots } from '../../src/archive/plan/snapshot-order.js';
import { seededRandom, shuffled } from '../../src/util/random.js';

const DS = 'tank/ds';
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

interface Snap {
  name: string;
  guid: string;
  /** Unix seconds: one-second resolution, as in the BEGIN record. */
  creation: number;
  txg: string;
}

interface StreamOptions {
  raw?: boolean;
  /** Record createtxg (newer versions, zfs at hand). */
  txg?: boolean;
  /** finishedAt, ms; default: one second after the previous stream of this file. */
  finishedAt?: number;
  dataset?: string;
}

let archiveClock = Date.parse('2027-01-01T00:00:00Z');

/** A manifest as the writer makes it: a real stream id (which embeds the name), whole-second creation times. */
function stream(from: Snap | null, tos: Snap[], o: StreamOptions = {}): Manifest {
  const raw = o.raw ?? false;
  const txg = (s: Snap) => (o.txg ? { createtxg: s.txg } : {});
  const finished = o.finishedAt ?? (archiveClock += 1000);
  const compound = tos.length > 1;
  let offset = compound ? 624 : 0;
  let fromguid = from?.guid ?? '0';
  const substreams = tos.map((s) => {
    const sub = {
      toname: s.name.includes('@') ? s.name : `${o.dataset ?? DS}@${s.name}`,
      toguid: s.guid,
      fromguid,
      creation: iso(s.creation),
      ...txg(s),
      objsetType: 'filesystem',
      features: [],
      featureFlags: 0,
      beginFlags: 0,
      raw,
      clone: false,
      offset,
      bytes: 1000,
      records: 3,
      endChecksum: [],
    };
    fromguid = s.guid;
    offset += 1000;
    return sub;
  });
  const last = tos.at(-1)!;
  const kind = from ? 'incr' : 'full';
  return {
    streamId: makeStreamId(last.creation, kind, last.name.replace(/.*@/, ''), BigInt(last.guid)),
    dataset: o.dataset ?? DS,
    kind,
    to: { name: last.name, guid: last.guid, creation: iso(last.creation), ...txg(last) },
    from: from ? { name: from.name, guid: from.guid, ...txg(from) } : null,
    raw,
    compound,
    substreams,
    sendArgs: null,
    startedAt: new Date(finished - 500).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    rawBytes: offset + (compound ? 312 : 0),
    storedBytes: offset,
    chunks: [],
  } as unknown as Manifest;
}

const byId = (ms: readonly Manifest[]) => [...ms].sort((a, b) => a.streamId.localeCompare(b.streamId));
const T = Date.UTC(2026, 5, 1, 2, 0, 0) / 1000;
const snap = (name: string, guid: string, creation = T, txg = '0'): Snap => ({ name, guid, creation, txg });

describe('orderSnapshots: hand cases', () => {
  it('orders a 500-stream chain made in one second by the chain, whatever names, GUIDs, ids and archival times say', () => {
    const rand = seededRandom(7);
    const snaps = Array.from({ length: 500 }, (_, i) => snap(`s${i}`, String(1 + Math.floor(rand() * 2 ** 52))));
    // Archived "backwards" on purpose: the archival time must not outvote the chain.
    const streams = snaps.map((s, i) => stream(i === 0 ? null : snaps[i - 1]!, [s], { finishedAt: archiveClock + (500 - i) * 1000 }));
    const order = orderSnapshots(byId(streams));
    expect(order.oldestFirst).toEqual(snaps.map((s) => s.guid));
    expect(order.newest).toBe(snaps[499]!.guid);
    expect(order.streams).toEqual(streams);
    expect(orderSnapshots(shuffled(streams, rand)).oldestFirst).toEqual(snaps.map((s) => s.guid));
    expect(buildChains(byId(streams)).chains[0]!.snapshots).toEqual(snaps.map((s) => s.name));
  });

  it('keeps -I substreams in their order', () => {
    const [a, b, c, d, e, f] = ['z', 'y', 'x', 'w', 'v', 'u'].map((n, i) => snap(n, String(900 - i)));
    const streams = [stream(null, [a!]), stream(a!, [b!, c!, d!], { finishedAt: 1 }), stream(d!, [e!, f!], { finishedAt: 1 })];
    expect(orderSnapshots(byId(streams)).oldestFirst).toEqual([a, b, c, d, e, f].map((s) => s!.guid));
  });

  it('orders unrelated snapshots of one second by createtxg where both have it, else by archival time', () => {
    const a = snap('a', '1', T, '500');
    const b = snap('b', '2', T, '900');
    const c = snap('c', '3', T, '700');
    const fulls = [stream(null, [b], { txg: true, finishedAt: 1000 }), stream(null, [c], { txg: true, finishedAt: 2000 }), stream(null, [a], { txg: true, finishedAt: 3000 })];
    expect(orderSnapshots(fulls).oldestFirst).toEqual(['1', '3', '2']);
    // Without txgs (older manifests) only the archival time is left.
    const old = [stream(null, [b], { finishedAt: 1000 }), stream(null, [c], { finishedAt: 2000 }), stream(null, [a], { finishedAt: 3000 })];
    expect(orderSnapshots(old).oldestFirst).toEqual(['2', '3', '1']);
    // Mixed: c without a txg is placed by its archival time; a < b by txg all the same.
    const mixed = [stream(null, [b], { txg: true, finishedAt: 1000 }), stream(null, [c], { finishedAt: 2000 }), stream(null, [a], { txg: true, finishedAt: 3000 })];
    const order = orderSnapshots(mixed).oldestFirst;
    expect(order.indexOf('1')).toBeLessThan(order.indexOf('2'));
  });

  it("takes a base's txg from a newer incremental when its own older stream has none", () => {
    const x = snap('x', '10', T, '100');
    const y = snap('y', '20', T, '300');
    const z = snap('z', '30', T, '200');
    const streams = [stream(null, [z], { txg: true, finishedAt: 1000 }), stream(null, [x], { finishedAt: 2000 }), stream(x, [y], { txg: true, finishedAt: 3000 })];
    expect(orderSnapshots(streams).oldestFirst).toEqual(['10', '30', '20']);
  });

  it('orders by creation time before archival time, and never by GUID or name text', () => {
    const early = snap('zzz', '1', T, '0');
    const late = snap('aaa', '9', T + 1, '0');
    expect(orderSnapshots([stream(null, [late], { finishedAt: 1 }), stream(null, [early], { finishedAt: 2 })]).oldestFirst).toEqual(['1', '9']);
    // Same second, no txg, no chain: the one archived later is newer, both ways round.
    const p = snap('p', '111', T);
    const q = snap('q', '999', T);
    expect(orderSnapshots([stream(null, [p], { finishedAt: 1 }), stream(null, [q], { finishedAt: 2 })]).newest).toBe('999');
    expect(orderSnapshots([stream(null, [p], { finishedAt: 2 }), stream(null, [q], { finishedAt: 1 })]).newest).toBe('111');
  });

  it('lets the chain win over txgs that do not compare (a dataset restored into another pool and sent on)', () => {
    const o1 = snap('o1', '1', T, '5000');
    const o2 = snap('o2', '2', T, '6000');
    const n1 = snap('n1', '3', T, '120'); // received into a new pool: small txgs
    const n2 = snap('n2', '4', T, '130');
    const streams = [stream(null, [o1], { txg: true }), stream(o1, [o2], { txg: true }), stream(o2, [n1], { txg: true }), stream(n1, [n2], { txg: true })];
    expect(orderSnapshots(shuffled(streams, seededRandom(3))).oldestFirst).toEqual(['1', '2', '3', '4']);
  });

  it('picks the re-created snapshot when a name was destroyed and re-used in the same second', () => {
    const daily1 = snap('daily', '900', T);
    const hourly = snap('hourly', '500', T);
    const daily2 = snap('daily', '100', T);
    const streams = [stream(null, [daily1]), stream(daily1, [hourly]), stream(hourly, [daily2])];
    for (const input of [streams, [...streams].reverse()]) {
      expect(planRestore({ dataset: DS, streams: input, snapshot: 'daily' }).target.guid).toBe('100');
      expect(planRestore({ dataset: DS, streams: input }).target).toEqual({ name: 'daily', guid: '100' });
    }
  });

  it('treats two fulls of the same snapshot by their archival time', () => {
    const a = snap('a', '1');
    const older = stream(null, [a], { finishedAt: 2000 });
    const newer = stream(null, [a], { raw: true, finishedAt: 3000 });
    expect(orderSnapshots([newer, older]).streams).toEqual([older, newer]);
    expect(orderSnapshots([older, newer]).streams).toEqual([older, newer]);
  });

  it('ends on cycles from edited manifests, naming every snapshot once', () => {
    const a = snap('a', '1', T);
    const b = snap('b', '2', T + 5);
    const c = snap('c', '3', T + 9);
    const order = orderSnapshots([stream(b, [a]), stream(a, [b]), stream(null, [c]), stream(c, [a, b])]);
    expect([...order.oldestFirst].sort()).toEqual(['1', '2', '3']);
    expect(order.newestFirst).toEqual([...order.oldestFirst].reverse());
    expect(order.rank.size).toBe(3);
  });

  it('counts an unknown creation time as oldest unless the chain says otherwise', () => {
    const u = snap('u', '1', T + 99);
    const d = snap('d', '2', T);
    const unknown = stream(null, [u]);
    (unknown.substreams[0] as { creation: string }).creation = 'unknown';
    expect(orderSnapshots([stream(null, [d], { finishedAt: 1 }), unknown]).oldestFirst).toEqual(['1', '2']);
    expect(orderSnapshots([stream(null, [d]), stream(d, [u])]).newest).toBe('1');
  });

  it('orders only the own snapshots of a multi-dataset (-R) package', () => {
    const a = snap('a', '1');
    const child = snap('tank/ds/child@a', '5');
    const b = snap('b', '2');
    const order = orderSnapshots([stream(null, [a, child]), stream(a, [b])]);
    expect(order.oldestFirst).toEqual(['1', '2']);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests over seeded random histories.

interface History {
  streams: Manifest[];
  /** GUID → position on the source (the truth the archive can only partly know). */
  truth: Map<string, number>;
  creation: Map<string, number>;
  /** Archived in the source's order (no late fulls, older bases or deletions): even ties of one second are decidable. */
  inOrder: boolean;
  policy: RetentionPolicy;
  now: Date;
}

const KINDS = ['frequently', 'hourly', 'daily', 'weekly', 'monthly'];
const GAPS = [0, 0, 0, 0, 1, 60, 900, 3600, 6 * 3600, 86_400, 86_400, 3 * 86_400, 40 * 86_400];

/**
 * A source dataset's life and what was archived of it: sanoid-style bursts of snapshots in one
 * second, fulls, incrementals from the newest or an older base, -I streams, raw switches, late
 * fulls of old snapshots, names re-used, txgs recorded only from some point on (an upgrade) and
 * not by every put, then streams deleted at random.
 */
function randomHistory(seed: number): History {
  const rand = seededRandom(seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rand() * xs.length)]!;
  let second = T + Math.floor(rand() * 10_000_000);
  let txg = 1000 + Math.floor(rand() * 1_000_000);
  const source: Snap[] = [];
  const count = 2 + Math.floor(rand() * 40);
  for (let i = 0; i < count; i++) {
    second += pick(GAPS);
    txg += 1 + Math.floor(rand() * 40);
    const guid = String(1 + Math.floor(rand() * 2 ** 52));
    const name = rand() < 0.05 && source.length > 0 ? pick(source).name : `autosnap_${iso(second).slice(0, 19)}_${pick(KINDS)}`;
    source.push({ name, guid, creation: second, txg: String(txg) });
  }
  const truth = new Map(source.map((s, i) => [s.guid, i]));
  const inOrder = rand() < 0.3;
  const txgFrom = rand() < 0.3 ? 0 : rand() < 0.5 ? Infinity : Math.floor(rand() * count);
  let raw = rand() < 0.3;
  const archived: { index: number; raw: boolean }[] = [];
  const streams: Manifest[] = [];
  const add = (from: number | null, tos: number[], streamRaw: boolean, i: number) => {
    const m = stream(
      from === null ? null : source[from]!,
      tos.map((t) => source[t]!),
      { raw: streamRaw, txg: i >= txgFrom && rand() > 0.1, finishedAt: (archiveClock += 1 + Math.floor(rand() * 600_000)) },
    );
    if (streams.some((s) => s.streamId === m.streamId)) return;
    streams.push(m);
    for (const t of tos) archived.push({ index: t, raw: streamRaw });
  };
  for (let i = 0; i < count; i++) {
    if (rand() < 0.25) continue; // not archived (yet): a later -I may carry it
    if (rand() < 0.05) raw = !raw;
    const bases = archived.filter((a) => a.raw === raw && a.index < i);
    if (bases.length === 0 || rand() < 0.1) {
      add(null, [i], raw, i);
    } else {
      const base = inOrder || rand() < 0.8 ? bases.reduce((x, y) => (y.index > x.index ? y : x)) : pick(bases);
      const between = Array.from({ length: i - base.index - 1 }, (_, k) => base.index + 1 + k);
      add(base.index, rand() < 0.3 ? [...between, i] : [i], raw, i);
    }
    if (!inOrder && rand() < 0.05 && archived.length > 0) {
      const old = pick(archived); // a late full of an archived snapshot
      add(null, [old.index], old.raw, i);
    }
    if (!inOrder && rand() < 0.05) {
      const skipped = source.map((_, k) => k).filter((k) => k < i && !archived.some((a) => a.index === k));
      if (skipped.length > 0) add(null, [pick(skipped)], raw, i); // archived late, out of order
    }
  }
  const kept = !inOrder && rand() < 0.4 ? streams.filter(() => rand() > 0.15) : streams;
  const counts = () => (rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 6));
  let policy: RetentionPolicy = { keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0, minFulls: 0 };
  if (rand() < 0.6) {
    do {
      policy = {
        keepLast: rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 3),
        keepDaily: counts(),
        keepWeekly: counts(),
        keepMonthly: counts(),
        keepYearly: rand() < 0.7 ? 0 : 1,
        minFulls: Math.floor(rand() * 3),
      };
    } while ([policy.keepLast, policy.keepDaily, policy.keepWeekly, policy.keepMonthly, policy.keepYearly].every((c) => c === 0));
  }
  // Sometimes "now" is before the newest snapshot (clocks disagree).
  const now = new Date((second + Math.floor((rand() - 0.1) * 30 * 86_400)) * 1000);
  return { streams: shuffled(kept, rand), truth, creation: new Map(source.map((s) => [s.guid, s.creation])), inOrder, policy, now };
}

/** GUIDs a full leads to over links of one raw-ness (computed apart from the planners). */
function restorableFrom(streams: readonly ManifestSummary[]): Set<string> {
  const out = new Set<string>();
  for (const raw of [true, false]) {
    const reached = new Set(['0']);
    for (let grew = true; grew; ) {
      grew = false;
      for (const m of streams) {
        if (m.raw !== raw) continue;
        for (const s of m.substreams) {
          if (reached.has(s.fromguid) && !reached.has(s.toguid)) {
            reached.add(s.toguid);
            grew = true;
          }
        }
      }
    }
    for (const g of reached) if (g !== '0') out.add(g);
  }
  return out;
}

const stats = { histories: 0, snapshots: 0, pairs: 0, deleted: 0, sameSecond: 0, keepLast1: 0, newestBroken: 0, iStreams: 0 };

function checkHistory(h: History): void {
  const order = orderSnapshots(h.streams);
  const held = new Set(h.streams.flatMap((m) => m.substreams.map((s) => s.toguid)));
  expect(new Set(order.oldestFirst)).toEqual(held);
  expect(order.oldestFirst).toHaveLength(held.size);
  const rank = (g: string) => order.rank.get(g)!;
  if (held.size === 0) return; // nothing archived, or every stream deleted

  // 1. The chain: every substream's snapshot is newer than its base, -I substreams in order.
  for (const m of h.streams) {
    for (const s of m.substreams) if (held.has(s.fromguid)) expect(rank(s.fromguid), `${m.streamId}`).toBeLessThan(rank(s.toguid));
  }
  // 2. Where the archive can know the truth (different seconds, both txgs recorded, or streams
  //    archived in the source's order, so that the archival time tells), it is right.
  const txgs = new Set(h.streams.flatMap((m) => [...m.substreams.filter((s) => s.createtxg).map((s) => s.toguid), ...(m.from?.createtxg ? [m.from.guid] : [])]));
  const guids = [...held];
  for (const x of guids) {
    for (const y of guids) {
      if (h.truth.get(x)! >= h.truth.get(y)!) continue;
      const sameSecond = h.creation.get(x) === h.creation.get(y);
      if (sameSecond) stats.sameSecond++;
      if (!sameSecond || (txgs.has(x) && txgs.has(y)) || h.inOrder) {
        stats.pairs++;
        expect(rank(x), `${x} before ${y}`).toBeLessThan(rank(y));
      }
    }
  }
  // 3. The input order does not matter.
  expect(orderSnapshots([...h.streams].reverse()).oldestFirst).toEqual(order.oldestFirst);

  // 4. Restore's default snapshot is the newest.
  const restorable = restorableFrom(h.streams);
  const newest = order.newest!;
  if (restorable.has(newest)) expect(planRestore({ dataset: DS, streams: h.streams }).target.guid).toBe(newest);
  else expect(() => planRestore({ dataset: DS, streams: h.streams })).toThrow(/^cannot restore tank\/ds@/);

  // 5. Prune keeps the newest restorable snapshot, and restore still reaches it from what is kept.
  const plan = planRetention({ streams: h.streams, policy: h.policy, now: h.now });
  stats.deleted += plan.delete.length;
  expect(plan.snapshots.map((s) => s.guid)).toEqual(order.newestFirst);
  const top = order.newestFirst.find((g) => restorable.has(g));
  if (top !== newest) stats.newestBroken++;
  if (top === undefined) return;
  const verdict = plan.snapshots.find((s) => s.guid === top)!;
  expect(verdict).toMatchObject({ kept: true, restorableAfter: true });
  expect(verdict.why).toContain('newest');
  expect(restorableFrom(plan.keep).has(top)).toBe(true);
  const keepIds = new Set(plan.keep.map((m) => m.streamId));
  if (top === newest) {
    const restored = planRestore({ dataset: DS, streams: plan.keep });
    expect(restored.target.guid).toBe(newest);
    expect(restored.units.every((u) => keepIds.has(u.manifest.streamId))).toBe(true);
  }
  // Restoring it by name from the kept streams reaches it too (unless its name was re-used later).
  const name = verdict.name;
  const sameName = order.newestFirst.filter((g) => plan.snapshots.find((s) => s.guid === g)!.name === name && plan.keep.some((m) => m.substreams.some((s) => s.toguid === g)));
  if (sameName[0] === top) expect(planRestore({ dataset: DS, streams: plan.keep, snapshot: name }).target.guid).toBe(top);
}

describe('orderSnapshots and retention: random histories', () => {
  it('holds over 500 seeded random histories (same-second snapshots, -I streams, fulls, raw switches, deletions, keep-last 1)', () => {
    const started = performance.now();
    const histories = 500;
    for (let seed = 1; seed <= histories; seed++) {
      const h = randomHistory(seed);
      try {
        checkHistory(h);
      } catch (err) {
        throw new Error(`seed ${seed} (policy ${JSON.stringify(h.policy)}): ${(err as Error).message}`);
      }
      stats.histories++;
      if (h.policy.keepLast === 1 && h.policy.keepDaily + h.policy.keepWeekly + h.policy.keepMonthly + h.policy.keepYearly === 0) stats.keepLast1++;
      stats.iStreams += h.streams.filter((m) => m.substreams.length > 1).length;
      stats.snapshots += new Set(h.streams.flatMap((m) => m.substreams.map((s) => s.toguid))).size;
    }
    const ms = Math.round(performance.now() - started);
    console.log(
      `snapshot-order properties: ${stats.histories} histories (${stats.keepLast1} with keep-last 1 alone, ${stats.newestBroken} whose newest snapshot is on a broken chain), ` +
        `${stats.snapshots} snapshots, ${stats.iStreams} -I streams, ${stats.pairs} ordered pairs checked against the truth (${stats.sameSecond} same-second pairs), ${stats.deleted} streams pruned, ${ms} ms`,
    );
    // The generator must exercise same-second snapshots and deletion, not just trivial cases.
    expect(stats.sameSecond).toBeGreaterThan(1000);
    expect(stats.deleted).toBeGreaterThan(500);
    expect(stats.keepLast1).toBeGreaterThan(100);
    expect(stats.iStreams).toBeGreaterThan(300);
  });
});
