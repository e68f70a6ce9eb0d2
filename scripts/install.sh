#!/usr/bin/env bash
# Installs zfs-offsite on this machine and archives a first stream to a local directory.
#
#   bash scripts/install.sh                          archive a bundled sample stream
#   bash scripts/install.sh tank/data@snap [TARGET]  archive a real snapshot (needs zfs)
#
# TARGET defaults to ~/zfs-offsite-archive (a local directory: no cloud account needed).
set -euo pipefail
cd "$(dirname "$0")/.."

SNAPSHOT=${1:-}
TARGET=${2:-$HOME/zfs-offsite-archive}

# Debian 12's own nodejs package is Node.js 18: too old (package.json "engines"), so it is not suggested.
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)
if ! [[ $NODE_MAJOR =~ ^[0-9]+$ ]] || [ "$NODE_MAJOR" -lt 20 ]; then
  echo "install.sh: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none)); Debian 12's nodejs package is 18, too old: install Node.js 20 or newer as https://nodejs.org/en/download describes (e.g. its prebuilt Linux binaries), then run this again" >&2
  exit 1
fi
for tool in bzip2 zstd; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
  fi
done

npm ci --no-audit --no-fund
npm run build
# A link to this checkout (its node_modules hold the compiled zstd addon): `git pull && npm run build` updates it.
npm link --no-audit --no-fund
echo "installed: $(command -v zfs-offsite) ($(zfs-offsite --version))"

if [ -n "$SNAPSHOT" ]; then
  zfs-offsite send "$SNAPSHOT" --to "$TARGET"
else
  echo "no snapshot given: archiving a bundled sample zfs send stream to $TARGET"
  zfs-offsite put --to "$TARGET" --input test/fixtures/streams/zse-tiny-full.zfs
fi
zfs-offsite list "$TARGET"
