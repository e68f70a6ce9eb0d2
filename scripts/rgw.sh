#!/usr/bin/env bash
# Start/stop a real S3 server (Ceph RADOS Gateway) on 127.0.0.1 for the test suite.
#
#   scripts/rgw.sh start    install Debian packages if missing, start mon + OSD + radosgw,
#                           create the test S3 user, wait until S3 answers, write $RGW_DIR/env
#   scripts/rgw.sh stop     stop the daemons and remove $RGW_DIR
#   scripts/rgw.sh status   exit 0 if the server from $RGW_DIR is up and answering S3
#   scripts/rgw.sh env      print the env file (after start)
#
# Environment:
#   RGW_DIR        run directory holding ALL state (config, data, logs, pids, env)
#                  default /tmp/zfs-offsite-rgw
#   RGW_PORT       S3 port on 127.0.0.1 (default 7480)
#   RGW_MON_PORT   monitor port on 127.0.0.1 (default RGW_PORT + 10000)
#   RGW_STORE      memstore (default: objects kept in RAM, fastest start) or
#                  bluestore (objects in a sparse file; for benchmarks writing many GiB)
#   RGW_MEMSTORE_GIB   capacity the memstore OSD reports (default 8; RAM is used only as
#                      data is written, ~1.5x the live data)
#   RGW_BLUESTORE_GIB  size of the sparse bluestore block file (default 64)
#
# After `start`, `source "$RGW_DIR/env"` sets AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY and AWS_REGION. Clients must use path-style addressing and
# (AWS SDK v3) requestChecksumCalculation/responseChecksumValidation = "WHEN_REQUIRED":
# RGW 16 answers 411 to the SDK's default aws-chunked bodies.
#
# Nothing is written under /etc/ceph or /var/lib/ceph and no systemd unit is used: every
# daemon gets `-c $RGW_DIR/ceph.conf`, which points all paths into $RGW_DIR.
set -euo pipefail

RGW_DIR=$(realpath -m "${RGW_DIR:-/tmp/zfs-offsite-rgw}") # daemons chdir to /
RGW_PORT=${RGW_PORT:-7480}
RGW_MON_PORT=${RGW_MON_PORT:-$((RGW_PORT + 10000))}
RGW_STORE=${RGW_STORE:-memstore}
RGW_MEMSTORE_GIB=${RGW_MEMSTORE_GIB:-8}
RGW_BLUESTORE_GIB=${RGW_BLUESTORE_GIB:-64}

# Fixed test credentials: this server only listens on 127.0.0.1 and holds throwaway data.
ACCESS_KEY=zfsoffsite-test
SECRET_KEY=zfsoffsite-test-secret-0123456789abcdef
REGION=us-east-1
ENDPOINT="http://127.0.0.1:${RGW_PORT}"

CONF="$RGW_DIR/ceph.conf"
# The lock lives next to the run dir (not inside it: `stop` removes the run dir).
LOCK="${RGW_DIR%/}.lock"

log() { echo "rgw.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# alive, kill_wait
# shellcheck source=lib/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/process.sh"

# ---------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------
ensure_packages() {
  local missing=() cmd
  for cmd in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install the Debian packages"
  log "installing Debian packages (missing: ${missing[*]}); takes about a minute"
  local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update >&2
  "${apt[@]}" install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl >&2
}

# ---------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------
# pid of daemon $1 (mon.a, osd.0, client.rgw) from its pid file, if it is still running
# one of OUR daemons (its command line names our config file).
daemon_pid() {
  local f="$RGW_DIR/run/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

# All live processes whose command line names our config file (leftovers whose pid file
# was lost). Matches the full path of this run dir's ceph.conf only.
our_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-c $CONF"; then
      echo "${p#/proc/}"
    fi
  done
}

# True if S3 answers on the port with an S3 XML document (anonymous ListBuckets).
s3_answers() {
  local body
  body=$(curl -s --max-time 2 "$ENDPOINT/" 2>/dev/null) || return 1
  [[ "$body" == *"<ListAllMyBucketsResult"* || "$body" == *"<Error>"* ]]
}

is_up() {
  daemon_pid mon.a >/dev/null && daemon_pid osd.0 >/dev/null &&
    daemon_pid client.rgw >/dev/null && s3_answers
}

write_env() {
  cat >"$RGW_DIR/env.tmp" <<EOF
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=$REGION
EOF
  mv "$RGW_DIR/env.tmp" "$RGW_DIR/env"
}

# show_logs [NAME...]: tails of the given daemons' logs (mon.a, osd.0, client.rgw, ...),
# or of all of them. *.out holds what a daemon printed before it forked.
show_logs() {
  local names=("$@") name f
  [ ${#names[@]} -gt 0 ] || names=(mon.a osd.0 client.rgw)
  for name in "${names[@]}"; do
    for f in "$RGW_DIR/log/$name.out" "$RGW_DIR/log/$name.log"; do
      [ -s "$f" ] || continue
      echo "----- tail of $f -----" >&2
      tail -n 15 "$f" >&2
    done
  done
}

# fail MESSAGE [NAME...]: print MESSAGE and the relevant log tails, exit 1.
fail() {
  local msg=$1; shift
  log "ERROR: $msg"
  show_logs "$@"
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s.
wait_for() {
  local secs=$1 what=$2; shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $what"
}

# Seconds (one decimal) since a `date +%s%N` timestamp.
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

# Poll predicate for wait_for: S3 answers; gives up at once if a daemon has died.
rgw_ready() {
  local name
  for name in mon.a osd.0 client.rgw; do
    daemon_pid "$name" >/dev/null || fail "$name exited during start" "$name"
  done
  s3_answers
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
write_conf() {
  local fsid=$1 store_conf
  if [ "$RGW_STORE" = memstore ]; then
    store_conf="        osd objectstore = memstore
        # Capacity the OSD reports; RAM is only used as data arrives.
        memstore device bytes = $((RGW_MEMSTORE_GIB * 1024 * 1024 * 1024))"
  else
    # The block file must live OUTSIDE the OSD data dir: bluestore creates a symlink
    # osd.0/block -> block path, and a path inside the data dir makes a symlink loop.
    store_conf="        osd objectstore = bluestore
        bluestore block path = $RGW_DIR/bluestore.block
        bluestore block create = true
        bluestore block size = $((RGW_BLUESTORE_GIB * 1024 * 1024 * 1024))
        bluestore block db create = false
        bluestore block wal create = false
        bluestore fsck on mount = false
        osd memory target = 2147483648"
  fi
  # $name/$pid below are Ceph metavariables (escaped from the shell).
  cat >"$CONF" <<EOF
[global]
        fsid = $fsid
        mon host = v2:127.0.0.1:$RGW_MON_PORT
        public addr = 127.0.0.1
        cluster addr = 127.0.0.1
        ms bind msgr1 = false
        ms bind ipv6 = false

        # No authentication between the daemons: it is a private loopback test cluster.
        auth cluster required = none
        auth service required = none
        auth client required = none
        # With auth none the messenger must not use "secure" (encrypted) mode, which needs
        # the session key that cephx would negotiate. The default "ms mon client mode =
        # secure crc" makes radosgw hang ~300 s (send_auth_request ... returned -13).
        # crc = plain msgr2 frames with checksums; set for every connection type.
        ms mon client mode = crc
        ms client mode = crc
        ms service mode = crc
        ms cluster mode = crc
        ms mon service mode = crc
        ms mon cluster mode = crc

        # Every path points into the run dir.
        run dir = $RGW_DIR/run
        admin socket = $RGW_DIR/run/\$name.\$pid.asok
        log file = $RGW_DIR/log/\$name.log
        mon cluster log file = $RGW_DIR/log/cluster.log
        crash dir = $RGW_DIR/crash
        keyring = $RGW_DIR/keyring
        log to stderr = false
        err to stderr = true

        # One OSD: one copy of every object, small pools.
        osd pool default size = 1
        osd pool default min size = 1
        mon allow pool size one = true
        osd pool default pg num = 8
        osd pool default pgp num = 8
        osd pool default pg autoscale mode = off
        mon max pg per osd = 1000
        osd crush chooseleaf type = 0
        mon allow pool delete = true
        mon warn on pool no redundancy = false

[mon]
        mon data = $RGW_DIR/\$name
        pid file = $RGW_DIR/run/\$name.pid
        # Paxos commits every 50 ms instead of every 1 s: pool creation and the first
        # start drop from ~8.5 s to < 1 s.
        paxos propose interval = 0.05
        # Do not let the monitor shut itself down when the disk holding /tmp is >95% full.
        mon data avail warn = 1
        mon data avail crit = 0

[osd]
        osd data = $RGW_DIR/\$name
        pid file = $RGW_DIR/run/\$name.pid
        osd class dir = $(osd_class_dir)
$store_conf

[client.rgw]
        pid file = $RGW_DIR/run/\$name.pid
        rgw data = $RGW_DIR/rgw
        rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
        # Deleted objects stay in the OSD (in RAM for memstore) until RGW's garbage
        # collector removes them; defaults are 2 h wait / 1 h period.
        rgw gc obj min wait = 10
        rgw gc processor period = 10
        rgw gc processor max time = 10
EOF
}

osd_class_dir() {
  local d
  for d in /usr/lib/*/rados-classes /usr/lib/rados-classes /usr/lib64/rados-classes; do
    [ -d "$d" ] && { echo "$d"; return; }
  done
  echo /usr/lib/rados-classes
}

# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------
do_stop() {
  local pid pids name
  # radosgw first (it is a client of the cluster), then the OSD, then the monitor.
  # All state is thrown away with the run dir, so there is nothing to shut down cleanly:
  # SIGKILL everything. In particular a memstore OSD given SIGTERM first writes all its
  # objects to the data dir; radosgw and the mon take 1.5-2 s each to honour SIGTERM, and
  # radosgw hangs for minutes on SIGTERM once the mon is gone.
  for name in client.rgw osd.0 mon.a; do
    if pid=$(daemon_pid "$name"); then kill_wait KILL 5 "$pid"; fi
  done
  # Leftovers whose pid files were lost (e.g. a start interrupted before they were written).
  pids=$(our_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill_wait KILL 5 $pids
  fi
  rm -rf "$RGW_DIR"
}

do_start() {
  if is_up; then
    write_env
    log "already running: $ENDPOINT (env: $RGW_DIR/env)"
    return 0
  fi
  case "$RGW_STORE" in memstore | bluestore) ;; *) die "RGW_STORE must be memstore or bluestore" ;; esac
  ensure_packages

  # Anything left from an earlier, broken run of this run dir goes away.
  if [ -e "$RGW_DIR" ]; then
    log "cleaning up a stale run dir $RGW_DIR"
    do_stop
  fi
  port_free "$RGW_PORT" || die "port $RGW_PORT on 127.0.0.1 is in use by another program (set RGW_PORT)"
  port_free "$RGW_MON_PORT" || die "port $RGW_MON_PORT on 127.0.0.1 is in use (set RGW_MON_PORT)"

  local t0 fsid osd_uuid osd_id
  t0=$(date +%s%N)
  mkdir -p "$RGW_DIR"/{run,log,crash,rgw,mon.a,osd.0}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"

  log "starting mon ($RGW_STORE)"
  # With auth none the monitor needs no keyring. Daemons fork into the background once
  # initialised; what they print before that goes to log/*.out (shown on failure).
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$RGW_MON_PORT]" "$RGW_DIR/monmap" \
    >"$RGW_DIR/log/monmap.out" 2>&1 || fail "monmaptool failed" monmap
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$RGW_DIR/monmap" </dev/null >"$RGW_DIR/log/mon.a.out" 2>&1 ||
    fail "ceph-mon --mkfs failed" mon.a
  ceph-mon -c "$CONF" -i a </dev/null 9>&- >>"$RGW_DIR/log/mon.a.out" 2>&1 || fail "ceph-mon did not start" mon.a

  log "starting osd"
  # Registers osd.0 in the OSD map (waits for the monitor to form quorum).
  osd_id=$(ceph -c "$CONF" --connect-timeout 30 osd new "$osd_uuid" 2>"$RGW_DIR/log/osd-new.out") ||
    fail "'ceph osd new' failed" osd-new mon.a
  [ "$osd_id" = 0 ] || fail "expected osd id 0, got '$osd_id'"
  if [ "$RGW_STORE" = bluestore ]; then
    # Sparse: disk blocks are only allocated as data is written.
    truncate -s "${RGW_BLUESTORE_GIB}G" "$RGW_DIR/bluestore.block"
  fi
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" </dev/null >"$RGW_DIR/log/osd.0.out" 2>&1 ||
    fail "ceph-osd --mkfs failed" osd.0
  # memstore keeps objects in malloc'ed memory (the OSD is linked against glibc malloc,
  # not tcmalloc). glibc keeps freed memory in per-thread arenas and hands little back to
  # the kernel, so after deletes the OSD's RSS would stay at its peak. Fewer arenas and
  # mmap/trim thresholds of 128 KiB make freed object memory go back to the OS (measured:
  # 840 MB with 512 MiB stored -> 180 MB once RGW's GC has removed the deleted objects).
  MALLOC_ARENA_MAX=4 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 \
    ceph-osd -c "$CONF" -i 0 </dev/null 9>&- >>"$RGW_DIR/log/osd.0.out" 2>&1 || fail "ceph-osd did not start" osd.0

  log "starting radosgw on $ENDPOINT"
  radosgw -c "$CONF" -n client.rgw </dev/null 9>&- >"$RGW_DIR/log/client.rgw.out" 2>&1 || fail "radosgw did not start" client.rgw
  wait_for 60 "S3 to answer on $ENDPOINT" rgw_ready

  log "creating S3 user $ACCESS_KEY"
  radosgw-admin -c "$CONF" user create --uid=zfsoffsite-test --display-name="zfs-offsite tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$RGW_DIR/log/user-create.out" 2>&1 ||
    fail "radosgw-admin user create failed" user-create client.rgw

  is_up || fail "a daemon exited during start"
  write_env
  log "S3 ready on $ENDPOINT after $(elapsed "$t0")s; source $RGW_DIR/env"
}

do_status() {
  if is_up; then
    echo "running: $ENDPOINT (env: $RGW_DIR/env)"
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
# Serialise concurrent invocations on the same run dir (e.g. two test runs starting at once).
# The daemons are started with fd 9 closed: they would otherwise hold the lock forever.
exec 9>"$LOCK"
flock -w 300 9 || die "could not lock $LOCK"
case "$1" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) cat "$RGW_DIR/env" ;;
  *) usage ;;
esac
