#!/usr/bin/env node
/**
 * A stand-in for the `zfs` command, for testing `send` on machines without ZFS. It answers the
 * few subcommands zfs-offsite runs from a JSON state file (ZFS_STAND_IN_STATE) and "sends"
 * real zfs send streams recorded from OpenZFS (test/fixtures/streams). Every invocation's argv
 * is appended to the state's `log` file, so tests can assert the exact zfs arguments.
 * The real-ZFS end-to-end suite (a VM with OpenZFS) exercises the same paths for real.
 *
 * State: { log, datasets: { NAME: { encryption, snapshots: [{ name, guid, createtxg, creation }],
 *          bookmarks: [...] } }, streams: { "<fromguid or 0>:<toguid>": "/path/to/stream" },
 *          send: { failAfterBytes?, killAfterBytes?, stallAfterBytes?, pidFile?, exitCode?, stderr?,
 *                  estimate?, estimateFails? },
 *          receive: { into?, failAfterBytes?, exitCode?, stderr?, pidFile?, stall?, guidDelta? } }
 *
 * `snapshot`, `bookmark`, `destroy` (of bookmarks only), `hold` and `release` change the state file, so a test sees
 * what the CLI created; `list -t filesystem,volume [-r] ROOT` lists the dataset names.
 * `send -n -v -P ARGS` prints the size estimate as OpenZFS does (`full\t<snap>\t<size>` or
 * `incremental\t<from>\t<to>\t<size>`, then `size\t<bytes>`).
 * `receive [-F] [-s] [-u] DATASET` appends the stream it reads to the file `receive.into`; with
 * `failAfterBytes` it stops reading there and fails (the writer then gets EPIPE); `receive -A` only logs.
 * A receive that succeeds also creates DATASET in the state (its properties inherited from the
 * parent) with a snapshot per substream BEGIN record of the stream (name and GUID from the
 * record; `guidDelta` added to each GUID, as a receive that recorded another one); `pidFile` gets
 * its pid once it started, `stall` makes it read everything and never exit (until killed).
 * For `drill`: `create [-u] [-o PROP=VALUE]… DATASET`, `destroy -r DATASET` (the dataset and its
 * descendants; with the state's `destroyFails` it fails with that text) and `get -H -d 1 -s local -t filesystem -o name,value PROP ROOT` (the datasets
 * directly under ROOT with PROP set on themselves) work on the state's datasets and their `props`.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

const state = JSON.parse(readFileSync(process.env.ZFS_STAND_IN_STATE, 'utf8'));
const args = process.argv.slice(2);
appendFileSync(state.log, `${JSON.stringify(args)}\n`);

function fail(message, code = 1) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function entries(datasetName) {
  const ds = state.datasets[datasetName];
  if (!ds) fail(`cannot open '${datasetName}': dataset does not exist`);
  return [...ds.snapshots.map((s) => ({ ...s, full: `${datasetName}@${s.name}` })), ...(ds.bookmarks ?? []).map((s) => ({ ...s, full: `${datasetName}#${s.name}` }))];
}

function find(fullName) {
  const dataset = fullName.split(/[@#]/)[0];
  const hit = entries(dataset).find((e) => e.full === fullName);
  if (!hit) fail(`cannot open '${fullName}': ${fullName.includes('#') ? 'bookmark' : 'snapshot'} does not exist`);
  return hit;
}

const row = (e) => `${e.full}\t${e.guid}\t${e.createtxg}\t${e.creation}`;
const [cmd, ...rest] = args;

function saveState() {
  writeFileSync(process.env.ZFS_STAND_IN_STATE, JSON.stringify(state));
}

/** The next transaction group: one above every snapshot and bookmark of the pool. */
function nextTxg() {
  const all = Object.values(state.datasets).flatMap((ds) => [...ds.snapshots, ...(ds.bookmarks ?? [])]);
  return Math.max(0, ...all.map((e) => Number(e.createtxg))) + 1;
}

function randomGuid() {
  const high = BigInt(Math.floor(Math.random() * 2 ** 31) + 1) << 32n;
  return String(high | BigInt(Math.floor(Math.random() * 2 ** 32)));
}

if (cmd === 'version') {
  process.stdout.write('zfs-2.3.2-1\nzfs-kmod-2.3.2-1\n');
} else if (cmd === 'get' && rest.includes('-s')) {
  const root = rest[rest.length - 1];
  const prop = rest[rest.length - 2];
  if (!state.datasets[root]) fail(`cannot open '${root}': dataset does not exist`);
  const depth = root.split('/').length + 1;
  const hits = Object.entries(state.datasets).filter(
    ([n, ds]) => (n === root || (n.startsWith(`${root}/`) && n.split('/').length <= depth)) && ds.props?.[prop] !== undefined && !ds.inherited?.includes(prop),
  );
  process.stdout.write(hits.map(([n, ds]) => `${n}\t${ds.props[prop]}\n`).join(''));
} else if (cmd === 'get') {
  const name = rest[rest.length - 1];
  const ds = state.datasets[name];
  if (!ds) fail(`cannot open '${name}': dataset does not exist`);
  process.stdout.write(`${ds.encryption}\n`);
} else if (cmd === 'list' && rest[rest.indexOf('-t') + 1] === 'filesystem,volume') {
  const root = rest[rest.length - 1];
  if (!state.datasets[root]) fail(`cannot open '${root}': dataset does not exist`);
  const names = Object.keys(state.datasets).filter((n) => n === root || (rest.includes('-r') && n.startsWith(`${root}/`)));
  process.stdout.write(
    names
      .sort()
      .map((n) => `${n}\n`)
      .join(''),
  );
} else if (cmd === 'list') {
  const name = rest[rest.length - 1];
  if (rest.includes('-d'))
    process.stdout.write(
      `${entries(name)
        .sort((a, b) => a.createtxg - b.createtxg)
        .map(row)
        .join('\n')}\n`,
    );
  else process.stdout.write(`${row(find(name))}\n`);
} else if (cmd === 'send') {
  const target = find(rest[rest.length - 1]);
  const baseAt = rest.findIndex((a) => a === '-i' || a === '-I');
  const from = baseAt >= 0 ? find(rest[baseAt + 1]).guid : '0';
  const path = state.streams[`${from}:${target.guid}`];
  const plan = state.send ?? {};
  if (rest.includes('-n')) {
    // A dry run (`send -n -v -P`): the estimate as OpenZFS prints it on stdout, one line per
    // stream, then the total. `estimate` replaces the size (zfs's estimate is not exact, and
    // needs no recorded stream); `estimateFails` makes it fail like a zfs without -P.
    if (plan.estimateFails) fail(plan.estimateFails);
    if (plan.estimate === undefined && !path) fail(`stand-in has no stream ${from}:${target.guid}`);
    const size = plan.estimate ?? readFileSync(path).length;
    const line = baseAt >= 0 ? `incremental\t${rest[baseAt + 1]}\t${rest[rest.length - 1]}\t${size}` : `full\t${rest[rest.length - 1]}\t${size}`;
    process.stdout.write(`${line}\nsize\t${size}\n`);
    process.exit(0);
  }
  if (!path) fail(`stand-in has no stream ${from}:${target.guid}`);
  let bytes = readFileSync(path);
  if (plan.failAfterBytes !== undefined) bytes = bytes.subarray(0, plan.failAfterBytes);
  if (plan.pidFile) writeFileSync(plan.pidFile, String(process.pid));
  if (plan.stallAfterBytes !== undefined) {
    // Like a zfs send stuck in the kernel: output stops, the process stays.
    process.stdout.write(bytes.subarray(0, plan.stallAfterBytes), () => setTimeout(() => undefined, 600_000));
  } else if (plan.killAfterBytes !== undefined) {
    // Like a zfs send killed by the OOM killer or an admin: output stops, no exit status.
    process.stdout.write(bytes.subarray(0, plan.killAfterBytes), () => process.kill(process.pid, 'SIGKILL'));
  } else {
    process.stdout.write(bytes, () => {
      if (plan.exitCode) fail(plan.stderr ?? 'send failed', plan.exitCode);
    });
  }
} else if (cmd === 'receive' && rest[0] === '-A') {
  // Discarding a resumable receive's state: the log records it.
} else if (cmd === 'receive') {
  const plan = state.receive ?? {};
  const into = rest[rest.length - 1];
  if (plan.pidFile) writeFileSync(plan.pidFile, String(process.pid));
  let received = 0;
  const all = [];
  process.stdin.on('data', (bytes) => {
    const room = plan.failAfterBytes === undefined ? bytes.length : Math.max(0, plan.failAfterBytes - received);
    if (plan.into) appendFileSync(plan.into, bytes.subarray(0, room));
    all.push(bytes.subarray(0, room));
    received += Math.min(room, bytes.length);
    // Like a receive that refuses the stream part-way: it exits without reading the rest.
    if (plan.failAfterBytes !== undefined && received >= plan.failAfterBytes) fail(plan.stderr ?? 'cannot receive: failed', plan.exitCode ?? 1);
  });
  process.stdin.on('end', () => {
    if (plan.failAfterBytes !== undefined || plan.exitCode) fail(plan.stderr ?? 'cannot receive: failed', plan.exitCode ?? 1);
    if (plan.stall) {
      // Never exits on its own; gone with the zfs-offsite that started it (a test that gave up on it).
      const parent = process.ppid;
      return setInterval(() => process.ppid !== parent && process.exit(1), 500);
    }
    receiveInto(into, Buffer.concat(all), BigInt(plan.guidDelta ?? 0));
  });
} else if (cmd === 'snapshot') {
  const [dataset, snap] = rest[rest.length - 1].split('@');
  const ds = state.datasets[dataset];
  if (!ds) fail(`cannot open '${dataset}': dataset does not exist`);
  if (ds.snapshots.some((s) => s.name === snap)) fail(`cannot create snapshot '${dataset}@${snap}': dataset already exists`);
  ds.snapshots.push({ name: snap, guid: randomGuid(), createtxg: nextTxg(), creation: Math.floor(Date.now() / 1000) });
  saveState();
} else if (cmd === 'bookmark') {
  const source = find(rest[0]);
  const [dataset, mark] = rest[1].split('#');
  const ds = state.datasets[dataset];
  if ((ds.bookmarks ?? []).some((b) => b.name === mark)) fail(`cannot create bookmark '${rest[1]}': bookmark exists`);
  ds.bookmarks = [...(ds.bookmarks ?? []), { name: mark, guid: source.guid, createtxg: source.createtxg, creation: source.creation }];
  saveState();
} else if (cmd === 'create') {
  const name = rest[rest.length - 1];
  if (state.datasets[name]) fail(`cannot create '${name}': dataset already exists`);
  const parent = name.slice(0, name.lastIndexOf('/'));
  if (!state.datasets[parent]) fail(`cannot create '${name}': parent does not exist`);
  const props = {};
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] !== '-o') continue;
    const [k, ...v] = rest[i + 1].split('=');
    props[k] = v.join('=');
  }
  state.datasets[name] = { encryption: 'off', snapshots: [], props };
  saveState();
} else if (cmd === 'destroy' && rest[0] === '-r' && rest.length === 2 && !/[@#]/.test(rest[1])) {
  const name = rest[1];
  if (!state.datasets[name]) fail(`cannot open '${name}': dataset does not exist`);
  if (state.destroyFails) fail(`cannot destroy '${name}': ${state.destroyFails}`);
  for (const n of Object.keys(state.datasets)) if (n === name || n.startsWith(`${name}/`)) delete state.datasets[n];
  saveState();
} else if (cmd === 'destroy' && rest.length === 1 && rest[0].includes('#')) {
  const [dataset, mark] = rest[0].split('#');
  find(rest[0]);
  state.datasets[dataset].bookmarks = state.datasets[dataset].bookmarks.filter((b) => b.name !== mark);
  saveState();
} else if (cmd === 'hold' || cmd === 'release') {
  // `hold TAG SNAP` / `release TAG SNAP`: the snapshot's `holds` list in the state.
  const [tag, name] = rest;
  const [dataset, snap] = name.split('@');
  const s = (state.datasets[dataset]?.snapshots ?? []).find((x) => x.name === snap);
  if (!s) fail(`cannot ${cmd} snapshot '${name}': dataset does not exist`);
  const holds = s.holds ?? [];
  if (cmd === 'hold' && holds.includes(tag)) fail(`cannot hold snapshot '${name}': tag already exists on this dataset`);
  if (cmd === 'release' && !holds.includes(tag)) fail(`cannot release hold from snapshot '${name}': no such tag on this dataset`);
  s.holds = cmd === 'hold' ? [...holds, tag] : holds.filter((t) => t !== tag);
  saveState();
} else if (cmd === 'holds') {
  // `holds -H SNAP…`: name, tag, timestamp per hold.
  for (const name of rest.filter((a) => a !== '-H')) {
    const [dataset, snap] = name.split('@');
    const s = (state.datasets[dataset]?.snapshots ?? []).find((x) => x.name === snap);
    if (!s) fail(`cannot open '${name}': dataset does not exist`);
    for (const tag of s.holds ?? []) process.stdout.write(`${name}\t${tag}\tMon Nov 30 12:00 2026\n`);
  }
} else {
  fail(`stand-in: unsupported zfs ${args.join(' ')}`, 2);
}

/**
 * A received stream in the state: DATASET (created when new, user properties inherited from its
 * parent) gains one snapshot per substream BEGIN record (found at 8-byte boundaries by its magic).
 */
function receiveInto(dataset, bytes, guidDelta) {
  const parent = state.datasets[dataset.slice(0, dataset.lastIndexOf('/'))];
  const ds = (state.datasets[dataset] ??= { encryption: 'off', snapshots: [], props: { ...(parent?.props ?? {}) }, inherited: Object.keys(parent?.props ?? {}) });
  for (let at = 0; at + 312 <= bytes.length; at += 8) {
    if (bytes.readUInt32LE(at) !== 0 || bytes.readBigUInt64LE(at + 8) !== 0x2f5bacbacn) continue;
    if ((bytes.readBigUInt64LE(at + 16) & 3n) !== 1n) continue; // DMU_SUBSTREAM, not a compound header
    const toname = bytes
      .subarray(at + 56, at + 312)
      .toString('latin1')
      .replace(/\0.*$/s, '');
    const guid = String(bytes.readBigUInt64LE(at + 40) + guidDelta);
    ds.snapshots.push({ name: toname.slice(toname.indexOf('@') + 1), guid, createtxg: nextTxg(), creation: Number(bytes.readBigUInt64LE(at + 24)) });
  }
  saveState();
}
