#!/usr/bin/env bash
# A throwaway Debian 12 VM with real OpenZFS 2.3 (qemu, TCG) for the test suite.
#
#   scripts/zfs-vm/vm.sh start        build the image if needed (first time ~15 min), boot the VM,
#                                     wait for ssh, set its clock, load zfs.ko, write $ZFS_VM_RUN/env
#   scripts/zfs-vm/vm.sh stop         kill the VM and remove $ZFS_VM_RUN (the cached image stays)
#   scripts/zfs-vm/vm.sh status       exit 0 when the VM answers ssh
#   scripts/zfs-vm/vm.sh ssh [cmd…]   run a command in the VM as root (a shell without cmd)
#   scripts/zfs-vm/vm.sh env          print the env file
#
# After `start`, `source $ZFS_VM_RUN/env` sets
#   ZFS_VM_SSH            ssh command prefix for the VM, e.g. `$ZFS_VM_SSH zpool status`
#   ZFS_OFFSITE_ZFS_CMD   the zfs command of the VM, for zfs-offsite (`--zfs-cmd`)
#   ZFS_VM_DISKS          the VM's empty test disks (guest paths) for `zpool create`
#   ZFS_VM_RUN, ZFS_VM_SSH_CONFIG
# All ssh calls share one connection (ControlMaster; a new connection costs ~2 s under TCG).
#
# Every start gets a fresh copy-on-write overlay over the cached image and fresh, empty test
# disks: nothing a test does survives `stop`.
#
# Warm start: the first start of an image boots it (≈ 1 min) and, as soon as ssh answers and
# BEFORE zfs.ko is loaded, saves the VM's state (RAM + disk delta) next to the image; later
# starts resume that state (≈ 10 s). zfs.ko is always loaded fresh after the resume (its PRNG
# is seeded at load: a resumed, already-loaded module would hand out the same GUIDs in every
# VM); a new vmgenid makes the guest kernel reseed its RNG on resume.
#
# Environment:
#   ZFS_VM_RUN         run directory (default /tmp/zfs-offsite-vm): overlay, disks, sockets, env;
#                      a directory of its own: `stop` deletes it
#   ZFS_VM_CACHE       image cache (default $HOME/.cache/zfs-offsite-vm), see build-image.sh
#   ZFS_VM_IMAGE       use this image directory instead of build-image.sh's (no build)
#   ZFS_VM_SSH_PORT    ssh port on 127.0.0.1 (default 2222)
#   ZFS_VM_MEM         guest RAM in MiB (default 2560)
#   ZFS_VM_CPUS        vCPUs (default 2)
#   ZFS_VM_DISKS       number of empty test disks (default 2), ZFS_VM_DISK_SIZE each (default 1G)
#   ZFS_VM_APPEND      extra kernel command line arguments
#   ZFS_VM_WARM        1 (default): save/resume the warm-start state; 0: always boot cold
#   ZFS_VM_BOOT_TIMEOUT  seconds to wait for ssh (default 300)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=${ZFS_VM_RUN:-/tmp/zfs-offsite-vm}
RUN=${RUN%/}
PORT=${ZFS_VM_SSH_PORT:-2222}
MEM=${ZFS_VM_MEM:-2560}
CPUS=${ZFS_VM_CPUS:-2}
NDISKS=${ZFS_VM_DISKS:-2}
DISK_SIZE=${ZFS_VM_DISK_SIZE:-1G}
WARM=${ZFS_VM_WARM:-1}
BOOT_TIMEOUT=${ZFS_VM_BOOT_TIMEOUT:-300}
HOST=zfsvm
SSH_CONFIG="$RUN/ssh_config"
LOCK="$RUN.lock"

log() { printf '%s vm.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# pid of OUR qemu (its command line names our run directory), if it is running.
qemu_pid() {
  local pid
  [ -s "$RUN/qemu.pid" ] || return 1
  pid=$(<"$RUN/qemu.pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$RUN/overlay.qcow2" || return 1
  echo "$pid"
}

vm_ssh() { ssh -F "$SSH_CONFIG" "$HOST" "$@"; }
# One-off connection that does not become (or need) the shared master.
vm_ssh_once() {
  timeout 20 ssh -F "$SSH_CONFIG" -o ControlMaster=no -o ControlPath=none -o ConnectTimeout=5 "$HOST" "$@"
}

# HMP monitor command; prints the monitor's answer.
hmp() {
  printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$RUN/monitor.sock" 2>/dev/null | tr -d '\r'
}

status() {
  [ -f "$RUN/env" ] && qemu_pid >/dev/null && timeout 20 ssh -F "$SSH_CONFIG" -o ConnectTimeout=10 "$HOST" true 2>/dev/null
}

stop() {
  local pid i
  case "$RUN" in "" | / | /tmp | "$HOME") die "refusing to use $RUN as the run directory" ;; esac
  if [ -f "$SSH_CONFIG" ]; then ssh -F "$SSH_CONFIG" -O exit "$HOST" >/dev/null 2>&1 || true; fi
  if pid=$(qemu_pid); then
    log "stopping qemu (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    if [ -d "/proc/$pid" ]; then kill -9 "$pid" 2>/dev/null || true; sleep 0.5; fi
  fi
  rm -rf --one-file-system "$RUN"
}

# ---------------------------------------------------------------------------------------
start() {
  if status; then
    log "already running; env: $RUN/env"
    return 0
  fi
  [ -e "$RUN" ] && { log "removing stale run directory $RUN"; stop; }

  local img
  if [ -n "${ZFS_VM_IMAGE:-}" ]; then
    img=$ZFS_VM_IMAGE
  else
    img=$("$HERE/build-image.sh") || die "building the VM image failed"
  fi
  [ -s "$img/root.qcow2" ] || die "no image in $img"
  for cmd in qemu-system-x86_64 qemu-img socat zstd ssh; do
    command -v "$cmd" >/dev/null || die "missing $cmd (build-image.sh installs it)"
  done

  mkdir -p "$RUN"
  local kernel="$img/vmlinux"
  [ -s "$kernel" ] || kernel="$img/vmlinuz"

  cat >"$SSH_CONFIG" <<EOF
# Throwaway VM on the loopback interface: no host key checking.
Host $HOST
  HostName 127.0.0.1
  Port $PORT
  User root
  IdentityFile $img/id_ed25519
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 30
  ServerAliveInterval 30
  ControlMaster auto
  ControlPath $RUN/ssh-control
  ControlPersist 10m
  Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
EOF

  local disks=() i
  for i in $(seq 1 "$NDISKS"); do
    truncate -s "$DISK_SIZE" "$RUN/disk$i.raw"
    disks+=(-drive "if=none,id=disk$i,file=$RUN/disk$i.raw,format=raw,cache=unsafe,discard=unmap"
            -device "virtio-blk-pci,drive=disk$i,serial=zfsdisk$i")
  done

  # tsc=reliable: under TCG the guest marks the TSC unstable at boot and falls back to the
  # HPET, whose every read is emulated MMIO (clock_gettime ~1.3 us instead of ~0.13 us).
  local append="root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 noresume mitigations=off tsc=reliable"
  append+=" quiet loglevel=4 systemd.show_status=0${ZFS_VM_APPEND:+ $ZFS_VM_APPEND}"
  # Everything that must be identical between the VM that saved a warm state and the one
  # that resumes it. Paths inside $RUN and the ssh port may differ.
  local args=(
    -name zfs-offsite-vm
    -machine q35 -accel tcg,thread=multi -cpu max,la57=off,-avx,-avx2,-svm,-vmx
    -smp "$CPUS" -m "$MEM"
    -nodefaults -no-user-config -display none -no-reboot
    -kernel "$kernel" -initrd "$img/initrd.img" -append "$append"
    -drive "if=none,id=root,file=$RUN/overlay.qcow2,format=qcow2,cache=unsafe,discard=unmap"
    -device virtio-blk-pci,drive=root,serial=root
    "${disks[@]}"
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$PORT-:22"
    -device virtio-net-pci,netdev=net0,romfile=
    -device virtio-rng-pci
    -device vmgenid,guid=auto
    -serial "file:$RUN/console.log"
    -monitor "unix:$RUN/monitor.sock,server=on,wait=off"
    -pidfile "$RUN/qemu.pid"
  )
  local sig
  sig=$( { qemu-system-x86_64 --version | head -n 1; echo "disk=$DISK_SIZE"; printf '%s\n' "${args[@]}"; } |
         sed -e "s#$RUN#RUN#g" -e 's#hostfwd=[^,]*#hostfwd#' | sha256sum | cut -c1-12)
  local warm="$img/warm-$sig"
  local mode=cold
  local t0
  t0=$(date +%s.%N)

  if [ "$WARM" = 1 ] && [ -s "$warm/state.zst" ] && [ -s "$warm/delta.qcow2" ]; then
    mode=warm
    qemu-img create -q -f qcow2 -F qcow2 -b "$warm/delta.qcow2" "$RUN/overlay.qcow2"
    log "resuming the saved VM state (warm start)"
    launch "${args[@]}" -incoming "exec:zstd -dc '$warm/state.zst'"
    if ! wait_running || ! wait_ssh 90 master; then
      log "warm start failed; discarding the saved state and booting cold"
      tail -n 20 "$RUN/qemu.log" >&2 || true
      rm -rf --one-file-system "$warm"
      stop
      start
      return
    fi
    log "ssh is up after $(since "$t0")s ($mode)"
  else
    qemu-img create -q -f qcow2 -F qcow2 -b "$img/root.qcow2" "$RUN/overlay.qcow2"
    log "booting $(basename "$kernel") under TCG (cold start, ~1 min)"
    launch "${args[@]}"
    wait_ssh "$BOOT_TIMEOUT" || { tail -n 40 "$RUN/console.log" >&2 || true; stop; die "the VM did not answer ssh"; }
    log "ssh is up after $(since "$t0")s ($mode)"
    if [ "$WARM" = 1 ]; then save_warm_state "$warm" || log "WARNING: could not save the warm-start state (the VM keeps running)"; fi
  fi

  # The shared connection first (so the clock below is not late by a handshake), then the
  # guest clock (stale after a resume), fresh entropy, zfs.ko.
  vm_ssh true || die "ssh to the VM failed"
  head -c 64 /dev/urandom | vm_ssh "cat >/dev/urandom; date -u -s @$(date +%s.%N) >/dev/null" ||
    die "setting the VM's clock failed"
  log "loading zfs.ko"
  vm_ssh 'modprobe zfs && for i in $(seq 100); do [ -c /dev/zfs ] && [ "$(cat /sys/module/zfs/initstate)" = live ] && break; sleep 0.1; done; [ -c /dev/zfs ]' ||
    die "modprobe zfs failed in the VM"
  local version
  version=$(vm_ssh zfs version | tr '\n' ' ')

  local guest_disks=()
  for i in $(seq 1 "$NDISKS"); do guest_disks+=("/dev/disk/by-id/virtio-zfsdisk$i"); done
  cat >"$RUN/env.tmp" <<EOF
export ZFS_VM_RUN="$RUN"
export ZFS_VM_SSH_CONFIG="$SSH_CONFIG"
export ZFS_VM_SSH="ssh -F $SSH_CONFIG $HOST"
export ZFS_OFFSITE_ZFS_CMD="ssh -F $SSH_CONFIG $HOST zfs"
export ZFS_VM_DISKS="${guest_disks[*]}"
EOF
  mv "$RUN/env.tmp" "$RUN/env"
  log "zfs ready after $(since "$t0")s ($mode start): $version"
  log "env: source $RUN/env"
}

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Starts qemu detached from this shell (its own session; all output to files).
launch() {
  : >"$RUN/qemu.log"
  setsid qemu-system-x86_64 "$@" </dev/null >>"$RUN/qemu.log" 2>&1 &
  local i
  for i in $(seq 50); do qemu_pid >/dev/null && return 0; sleep 0.1; done
  cat "$RUN/qemu.log" >&2
  die "qemu did not start"
}

# Waits until an incoming migration has been loaded and the VM runs. (An ssh connection
# opened before that hangs: loading the state replaces the user-mode network's state.)
wait_running() {
  local i
  for i in $(seq 600); do
    case "$(hmp 'info status')" in *"status: running"*) return 0 ;; esac
    qemu_pid >/dev/null || { log "qemu exited:"; tail -n 20 "$RUN/qemu.log" >&2; return 1; }
    sleep 0.2
  done
  log "the saved state was not loaded after 120 s"
  return 1
}

# Waits until ssh answers (or qemu dies, or $1 seconds pass). With $2 = master, the first
# connection that succeeds stays open as the shared master (saves a ~2 s handshake);
# without, no connection is left open (the warm-start state is saved next).
wait_ssh() {
  local deadline=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    qemu_pid >/dev/null || { log "qemu exited:"; tail -n 20 "$RUN/qemu.log" >&2; return 1; }
    if [ "${2:-}" = master ]; then
      if timeout 20 ssh -F "$SSH_CONFIG" -o ConnectTimeout=5 "$HOST" true 2>/dev/null; then return 0; fi
    elif vm_ssh_once true 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  log "no ssh after $1 s"
  return 1
}

# Saves the running VM's RAM (zstd) and its disk delta into $1, then lets it run on.
# Called right after ssh came up and before zfs.ko is loaded.
save_warm_state() {
  local dest=$1 tmp="$1.tmp-$$" out i
  rm -rf --one-file-system "$tmp"
  mkdir -p "$tmp"
  log "saving the warm-start state (before zfs.ko is loaded)"
  hmp "migrate -d \"exec:zstd -q -3 -T2 >'$tmp/state.zst'\"" >/dev/null
  for i in $(seq 600); do
    out=$(hmp 'info migrate')
    case "$out" in
      *"Migration status: completed"*) break ;;
      *"Migration status: failed"* | *"Migration status: cancelled"*)
        log "migration failed: $(grep -i status <<<"$out")"; hmp cont >/dev/null; rm -rf "$tmp"; return 1 ;;
    esac
    sleep 0.5
  done
  case "$out" in *"completed"*) ;; *) hmp migrate_cancel >/dev/null; hmp cont >/dev/null; rm -rf "$tmp"; return 1 ;; esac
  # The VM is paused and its disks are flushed and inactive: copy the overlay as it is now.
  cp --sparse=always "$RUN/overlay.qcow2" "$tmp/delta.qcow2"
  hmp cont >/dev/null
  case "$(hmp 'info status')" in
    *running*) ;;
    *) log "VM did not continue after saving"; rm -rf "$tmp"; return 1 ;;
  esac
  rm -rf --one-file-system "$dest"
  mv "$tmp" "$dest"
  log "warm-start state saved: $(du -sh "$dest" | cut -f1) in $dest"
}

# ---------------------------------------------------------------------------------------
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  start | stop)
    # One start/stop at a time. flock -o: the lock's file descriptor is NOT inherited by the
    # command, so the daemons it leaves behind (qemu, the ssh master) do not hold the lock.
    exec flock -o "$LOCK" "$0" "_$cmd"
    ;;
  _start | _stop)
    "${cmd#_}"
    ;;
  status)
    if status; then echo "running (ssh -F $SSH_CONFIG $HOST)"; exit 0; fi
    echo "not running"; exit 1
    ;;
  ssh)
    [ -f "$SSH_CONFIG" ] || die "the VM is not running (scripts/zfs-vm/vm.sh start)"
    if [ $# -eq 0 ]; then exec ssh -F "$SSH_CONFIG" -t "$HOST"; fi
    exec ssh -F "$SSH_CONFIG" "$HOST" "$@"
    ;;
  env)
    cat "$RUN/env"
    ;;
  *)
    echo "usage: $0 start|stop|status|ssh [cmd…]|env" >&2
    exit 2
    ;;
esac
