#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs what it needs
# (npm packages, zstd/bzip2, Ceph RGW, OpenStack Swift, OpenSSH), builds, starts the servers, runs
# vitest, stops them.
#   npm test                 everything
#   npm test -- test/stream  only some files (arguments go to vitest)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test.sh: $*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=300
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
}

# Command-line tools the tests use to check archives the way users would (zstd -d, sha256sum -c).
apt_install zstd bzip2 coreutils

# promtool (Debian's prometheus package) checks the --metrics-file outputs as Prometheus reads
# them. Only its binary is taken from the package (apt-get download, dpkg-deb -x): installing the
# package would also start a Prometheus server on this machine.
PROMTOOL_DIR="${PROMTOOL_DIR:-/tmp/zfs-offsite-promtool}"
if [ -z "${PROMTOOL:-}" ] && ! command -v promtool >/dev/null 2>&1 && [ ! -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then
  log "fetching promtool (Debian package prometheus, binary extracted only)"
  mkdir -p "$PROMTOOL_DIR"
  (
    cd "$PROMTOOL_DIR"
    apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq -o DPkg::Lock::Timeout=300 && apt-get download prometheus >/dev/null; }
    dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb
  )
fi
PROMTOOL="${PROMTOOL:-$(command -v promtool 2>/dev/null || echo "$PROMTOOL_DIR/usr/bin/promtool")}"
export PROMTOOL

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund
fi

log "building, type-checking and linting (Biome: lint rules and formatting)"
npm run --silent build
npm run --silent typecheck
npm run --silent lint

STARTED_RGW=0
STARTED_SWIFT=0
STARTED_SSHD=0
cleanup() {
  if [ "$STARTED_RGW" = 1 ]; then scripts/rgw.sh stop || true; fi
  if [ "$STARTED_SWIFT" = 1 ]; then scripts/swift.sh stop || true; fi
  if [ "$STARTED_SSHD" = 1 ]; then scripts/sshd.sh stop || true; fi
}
trap cleanup EXIT

if ! scripts/rgw.sh status >/dev/null 2>&1; then
  scripts/rgw.sh start
  STARTED_RGW=1
fi
# shellcheck disable=SC1091
source "${RGW_DIR:-/tmp/zfs-offsite-rgw}/env"

# The second real S3 implementation: OpenStack Swift with s3api; the tests read its env file
# themselves (the AWS_* variables above stay those of RGW).
if ! scripts/swift.sh status >/dev/null 2>&1; then
  scripts/swift.sh start
  STARTED_SWIFT=1
fi

# The SFTP storage box (OpenSSH); the tests read its env file themselves.
if ! scripts/sshd.sh status >/dev/null 2>&1; then
  scripts/sshd.sh start
  STARTED_SSHD=1
fi

log "running vitest"
npx vitest run "$@"
