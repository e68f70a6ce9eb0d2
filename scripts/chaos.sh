#!/usr/bin/env bash
# `npm run chaos [-- N]`: kill -9 of `put` at random points, N trials (default 50), each rerun
# checked (resume with fewer bytes, deep verify, byte-identical restore). Ends with
# "chaos: N passed, N failed". KILL_SEED=S repeats a run.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
npm run --silent build
log=$(mktemp)
status=0
KILL_TRIALS="$N" npx vitest run test/resilience/kill.test.ts 2>&1 | tee "$log" || status=$?
line=$(grep -o 'kill trials: [0-9]* passed, [0-9]* failed' "$log" | tail -n 1 | sed 's/^kill trials: //' || true)
rm -f "$log"
echo "chaos: ${line:-0 passed, $N failed}"
exit "$status"
