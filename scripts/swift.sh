#!/usr/bin/env bash
# Start/stop a second real S3 server on 127.0.0.1 for the test suite: OpenStack Swift with its
# s3api middleware (what OVH and other OpenStack clouds serve S3 with).
#
#   scripts/swift.sh start    install Debian packages if missing, build the rings, start
#                             memcached + account/container/object servers + proxy, wait until
#                             S3 answers, write $SWIFT_DIR/env
#   scripts/swift.sh stop     stop the daemons and remove $SWIFT_DIR
#   scripts/swift.sh status   exit 0 if the servers from $SWIFT_DIR are up and answering
#   scripts/swift.sh env      print the env file (after start)
#
# Environment:
#   SWIFT_DIR    run directory holding ALL state (configs, rings, data, logs, pids, env)
#                default /tmp/zfs-offsite-swift
#   SWIFT_PORT   S3 (proxy) port on 127.0.0.1 (default 7490); the object, container and
#                account servers and memcached listen on the next four ports
#
# After `start`, `source "$SWIFT_DIR/env"` sets AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY and AWS_REGION, as scripts/rgw.sh does for Ceph RGW.
#
# Shape: one proxy and one account, container and object server, each a single process
# (workers = 0); rings with one device and one replica; tempauth (which needs memcached) with
# one user, whose S3 access key is "<account>:<user>". Nothing is written under /etc/swift and
# no system service is used: every server reads its config and rings from $SWIFT_DIR/etc
# (swift_dir), the data lives in $SWIFT_DIR/srv (mount_check = false).
set -euo pipefail

SWIFT_DIR=$(realpath -m "${SWIFT_DIR:-/tmp/zfs-offsite-swift}")
SWIFT_PORT=${SWIFT_PORT:-7490}
OBJECT_PORT=$((SWIFT_PORT + 1))
CONTAINER_PORT=$((SWIFT_PORT + 2))
ACCOUNT_PORT=$((SWIFT_PORT + 3))
MEMCACHED_PORT=$((SWIFT_PORT + 4))

# Fixed test credentials: this server only listens on 127.0.0.1 and holds throwaway data.
SWIFT_ACCOUNT=zfsoffsite
SWIFT_USER=test
ACCESS_KEY="$SWIFT_ACCOUNT:$SWIFT_USER"
SECRET_KEY=zfsoffsite-swift-secret-0123456789abcdef
REGION=us-east-1
ENDPOINT="http://127.0.0.1:${SWIFT_PORT}"

ETC="$SWIFT_DIR/etc"
# Swift's own Python: a python3 earlier on PATH (pyenv, venv) does not have its modules.
PYTHON=/usr/bin/python3
SERVERS=(account container object proxy)
# The lock lives next to the run dir (not inside it: `stop` removes the run dir).
LOCK="${SWIFT_DIR%/}.lock"

log() { echo "swift.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# alive, kill_wait
# shellcheck source=lib/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/process.sh"

# ---------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------
ensure_packages() {
  local missing=() pkg
  for pkg in swift swift-proxy swift-object swift-container swift-account memcached curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install the Debian packages"
  log "installing Debian packages (missing: ${missing[*]}); takes about half a minute"
  local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update >&2
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2
}

# ---------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------
# The text that names OUR process of server $1 on its command line: its config file.
marker() {
  case "$1" in
    memcached) echo "-p $MEMCACHED_PORT" ;;
    *) echo "$ETC/$1-server.conf" ;;
  esac
}

# pid of server $1 (account, container, object, proxy, memcached) from its pid file, if it
# is still running one of OUR processes.
daemon_pid() {
  local f="$SWIFT_DIR/run/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(marker "$1")" || return 1
  alive "$pid" || return 1
  echo "$pid"
}

# Live Swift servers started with a config file of this run dir, and the memcached on our
# port (leftovers whose pid file was lost).
our_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    cmd=$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
    if [[ "$cmd" == *"/swift-"*"-server $ETC/"* || ("$cmd" == *memcached* && "$cmd" == *"$(marker memcached) "*) ]]; then
      echo "${p#/proc/}"
    fi
  done
}

healthy() { [ "$(curl -s --max-time 2 "$ENDPOINT/healthcheck" 2>/dev/null)" = OK ]; }

# True if the s3api middleware answers: an anonymous ListBuckets is an S3 XML error document.
s3_answers() {
  local body
  body=$(curl -s --max-time 2 -H 'Authorization: AWS nobody:x' "$ENDPOINT/" 2>/dev/null) || return 1
  [[ "$body" == *"<Error>"* || "$body" == *"<ListAllMyBucketsResult"* ]]
}

is_up() {
  local name
  for name in memcached "${SERVERS[@]}"; do daemon_pid "$name" >/dev/null || return 1; done
  healthy && s3_answers
}

write_env() {
  cat >"$SWIFT_DIR/env.tmp" <<EOF
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
EOF
  mv "$SWIFT_DIR/env.tmp" "$SWIFT_DIR/env"
}

show_logs() {
  local names=("$@") name f
  [ ${#names[@]} -gt 0 ] || names=(memcached "${SERVERS[@]}")
  for name in "${names[@]}"; do
    f="$SWIFT_DIR/log/$name.log"
    [ -s "$f" ] || continue
    echo "----- tail of $f -----" >&2
    tail -n 15 "$f" >&2
  done
}

fail() {
  local msg=$1; shift
  log "ERROR: $msg"
  show_logs "$@"
  exit 1
}

# Poll predicate while starting: S3 answers; gives up at once if a server has died.
swift_ready() {
  local name
  for name in memcached "${SERVERS[@]}"; do
    daemon_pid "$name" >/dev/null || fail "$name exited during start" "$name"
  done
  healthy && s3_answers
}

wait_for() {
  local secs=$1 what=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $what"
}

elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
write_conf() {
  local suffix prefix
  suffix=$(cat /proc/sys/kernel/random/uuid)
  prefix=$(cat /proc/sys/kernel/random/uuid)
  cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = $suffix
swift_hash_path_prefix = $prefix

[storage-policy:0]
name = Policy-0
default = yes
EOF

  # [DEFAULT] of every server: everything in the run dir, one process, logs to a file
  # (log_address points at a socket that does not exist; Swift then logs over UDP to a
  # syslog that is not there, i.e. nowhere: the servers' stderr goes to log/NAME.log).
  local name port
  for name in account container object; do
    case $name in
      account) port=$ACCOUNT_PORT ;;
      container) port=$CONTAINER_PORT ;;
      object) port=$OBJECT_PORT ;;
    esac
    cat >"$ETC/$name-server.conf" <<EOF
[DEFAULT]
swift_dir = $ETC
devices = $SWIFT_DIR/srv
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
log_address = $SWIFT_DIR/run/no-syslog

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name

[$name-replicator]
[$name-auditor]
EOF
  done
  cat >>"$ETC/container-server.conf" <<EOF
[container-updater]
[container-sync]
EOF
  cat >>"$ETC/object-server.conf" <<EOF
[object-updater]
EOF

  cat >"$ETC/proxy-server.conf" <<EOF
[DEFAULT]
swift_dir = $ETC
bind_ip = 127.0.0.1
bind_port = $SWIFT_PORT
workers = 0
log_address = $SWIFT_DIR/run/no-syslog

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION
s3_acl = false

[filter:tempauth]
use = egg:swift#tempauth
user_${SWIFT_ACCOUNT}_${SWIFT_USER} = $SECRET_KEY .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
}

# All three rings in one Python process (nine swift-ring-builder runs take ~10 s): 2^8
# partitions, one replica, one device on 127.0.0.1.
build_rings() {
  "$PYTHON" - "$ETC" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" <<'EOF' >"$SWIFT_DIR/log/rings.log" 2>&1
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], {'account': sys.argv[2], 'container': sys.argv[3], 'object': sys.argv[4]}
for name, port in ports.items():
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port),
                     'device': 'd0', 'weight': 100})
    builder.rebalance()
    builder.save('%s/%s.builder' % (etc, name))
    builder.get_ring().save('%s/%s.ring.gz' % (etc, name))
EOF
}

# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
do_stop() {
  local pid pids name
  # All state is thrown away with the run dir: nothing to shut down cleanly.
  for name in proxy object container account memcached; do
    if pid=$(daemon_pid "$name"); then kill_wait KILL 5 "$pid"; fi
  done
  pids=$(our_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill_wait KILL 5 $pids
  fi
  rm -rf "$SWIFT_DIR"
}

# start_server NAME: a Swift server in the background (it stays in the foreground itself).
start_server() {
  local name=$1
  setsid "/usr/bin/swift-$name-server" "$ETC/$name-server.conf" </dev/null 9>&- >"$SWIFT_DIR/log/$name.log" 2>&1 &
  echo $! >"$SWIFT_DIR/run/$name.pid"
}

do_start() {
  if is_up; then
    write_env
    log "already running: $ENDPOINT (env: $SWIFT_DIR/env)"
    return 0
  fi
  ensure_packages

  if [ -e "$SWIFT_DIR" ]; then
    log "cleaning up a stale run dir $SWIFT_DIR"
    do_stop
  fi
  local port
  for port in "$SWIFT_PORT" "$OBJECT_PORT" "$CONTAINER_PORT" "$ACCOUNT_PORT" "$MEMCACHED_PORT"; do
    port_free "$port" || die "port $port on 127.0.0.1 is in use by another program (set SWIFT_PORT)"
  done

  local t0 name
  t0=$(date +%s%N)
  mkdir -p "$SWIFT_DIR"/{etc,run,log,srv/d0}
  write_conf
  build_rings || fail "building the rings failed" rings

  # -u: memcached refuses to run as root without naming a user; -U 0: no UDP.
  setsid memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 -u "$(id -un)" </dev/null 9>&- \
    >"$SWIFT_DIR/log/memcached.log" 2>&1 &
  echo $! >"$SWIFT_DIR/run/memcached.pid"
  for name in "${SERVERS[@]}"; do start_server "$name"; done
  log "starting Swift (s3api) on $ENDPOINT"
  wait_for 60 "S3 to answer on $ENDPOINT" swift_ready
  write_env
  log "S3 ready on $ENDPOINT after $(elapsed "$t0")s; source $SWIFT_DIR/env"
}

do_status() {
  if is_up; then
    echo "running: $ENDPOINT (env: $SWIFT_DIR/env)"
  else
    echo "not running" >&2
    return 1
  fi
}

usage() {
  echo "usage: $0 start|stop|status|env" >&2
  exit 2
}

[ $# -eq 1 ] || usage
# Serialise concurrent invocations on the same run dir. Servers are started with fd 9
# closed: they would otherwise hold the lock forever.
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock -w 300 9 || die "could not lock $LOCK"
case "$1" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) cat "$SWIFT_DIR/env" ;;
  *) usage ;;
esac
