#!/usr/bin/env bash
# `npm run test:zfs`: the end-to-end suite on real OpenZFS 2.3 in a qemu VM (test/e2e).
# Builds the VM image if needed (first time ≈ 15 min, cached in ~/.cache/zfs-offsite-vm),
# starts Ceph RGW and the VM, runs the scenarios, stops what it started.
# Skips (exit 0, saying why) only when qemu cannot run here at all.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "test-zfs.sh: $*" >&2; }

if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
npm run --silent build

if [ "$(uname -m)" != x86_64 ]; then
  log "skipped: the test VM needs an x86_64 host (this is $(uname -m))"
  exit 0
fi

STARTED_RGW=0
STARTED_VM=0
cleanup() {
  if [ "$STARTED_VM" = 1 ]; then scripts/zfs-vm/vm.sh stop || true; fi
  if [ "$STARTED_RGW" = 1 ]; then scripts/rgw.sh stop || true; fi
}
trap cleanup EXIT

if ! scripts/rgw.sh status >/dev/null 2>&1; then
  scripts/rgw.sh start
  STARTED_RGW=1
fi
if ! scripts/zfs-vm/vm.sh status >/dev/null 2>&1; then
  started=$(date +%s)
  scripts/zfs-vm/vm.sh start
  STARTED_VM=1
  log "VM ready in $(( $(date +%s) - started )) s"
fi

ZFS_VM_REQUIRED=1 npx vitest run --config vitest.e2e.config.ts "$@"
