#!/usr/bin/env bash
# Builds (once) the disk image of a small Debian 12 VM with real OpenZFS 2.3 for the test suite.
#
#   scripts/zfs-vm/build-image.sh              build if missing; print the image directory
#   scripts/zfs-vm/build-image.sh --print-dir  print the image directory only (no build)
#   scripts/zfs-vm/build-image.sh --check      exit 0 if the image is built, 1 if not
#
# Needs root (debootstrap, chroot, mounts) and Debian's archive. A build takes 6-15 minutes
# (most of it compiling the ZFS module under DKMS, on 2 cores); run it in the background if
# your shell has a time limit:  scripts/zfs-vm/build-image.sh >build.log 2>&1 &
# (it runs at nice 10 by itself). All progress goes to stderr; stdout gets only the image
# directory, so callers can do  img=$(scripts/zfs-vm/build-image.sh).
#
# What it makes: a bookworm root filesystem (debootstrap minbase, default mirror) with the
# Debian kernel, zfs-dkms + zfsutils-linux from bookworm-backports (OpenZFS 2.3.x) built for
# the GUEST kernel, openssh-server with root login by a generated key, static networking for
# qemu user-mode net (10.0.2.15/24, gw 10.0.2.2), nothing slow at boot, and zfs.ko NOT loaded
# at boot (scripts/zfs-vm/vm.sh modprobes it after ssh is up).
#
# Output, in ${ZFS_VM_CACHE:-$HOME/.cache/zfs-offsite-vm}/<key>/ where <key> is a hash of this
# script (any change to the recipe builds a new image):
#   root.qcow2              root filesystem (ext4 on the whole disk, /dev/vda in the guest)
#   vmlinuz, vmlinux        guest kernel (vmlinux = uncompressed ELF for PVH boot, if extracted)
#   initrd.img              initramfs (only the virtio/ext4 modules)
#   id_ed25519[.pub]        the key for root@guest (throwaway, never in the repository)
#   manifest                kernel and zfs versions, build time
# vm.sh also keeps the warm-start state of the VM below that directory (warm-*/).
#
# The build happens in <cache>/.build-<key>-<pid>/ and is renamed into place at the very end,
# so an interrupted build never leaves a directory that looks complete. The .deb files are
# kept in <cache>/debs/ and reused by later builds (never `apt-get clean` that directory).
# After a successful build, images of other keys (older recipes) are removed.
#
# Environment:
#   ZFS_VM_CACHE        cache root (default $HOME/.cache/zfs-offsite-vm)
#   ZFS_VM_BUILD_NICE   niceness of the build (default 10; the machine is shared)
#   ZFS_VM_KEEP_OLD_IMAGES=1  keep the images of other keys
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
CACHE_ROOT=${ZFS_VM_CACHE:-$HOME/.cache/zfs-offsite-vm}
KEY=$(sha256sum "$SELF" | cut -c1-16)
OUT="$CACHE_ROOT/$KEY"
SUITE=bookworm
REQUIRED_FILES=(root.qcow2 vmlinuz initrd.img id_ed25519 id_ed25519.pub manifest)

T0=$(date +%s)
log() { printf '%s build-image: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { echo "$(( $(date +%s) - T0 ))s"; }

image_complete() {
  local f
  for f in "${REQUIRED_FILES[@]}"; do [ -s "$OUT/$f" ] || return 1; done
}

case "${1:-}" in
  --print-dir) echo "$OUT"; exit 0 ;;
  --check) image_complete; exit $? ;;
  "") ;;
  *) die "unknown argument: $1 (usage: build-image.sh [--print-dir|--check])" ;;
esac

if image_complete; then echo "$OUT"; exit 0; fi

# From here on stdout is the log (stderr); only the final directory name goes to the real stdout.
exec 3>&1 1>&2

[ "$(id -u)" -eq 0 ] || die "building the VM image needs root (debootstrap, chroot, mounts)"

# ---------------------------------------------------------------------------------------
# Host packages
# ---------------------------------------------------------------------------------------
HOST_PACKAGES=(qemu-system-x86 qemu-utils debootstrap openssh-client zstd xz-utils e2fsprogs socat util-linux coreutils)
ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null)" == *"ok installed" ]] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q -o DPkg::Lock::Timeout=600 update
  apt-get -q -y -o DPkg::Lock::Timeout=600 install --no-install-recommends "${missing[@]}"
}
ensure_host_packages

mkdir -p "$CACHE_ROOT" "$CACHE_ROOT/debs"
# One build at a time per cache (a second caller waits, then finds the image built).
exec 9>"$CACHE_ROOT/.build.lock"
if ! flock -n 9; then
  log "another build is running in $CACHE_ROOT; waiting for it"
  flock 9
fi
if image_complete; then echo "$OUT" >&3; exit 0; fi

renice -n "${ZFS_VM_BUILD_NICE:-10}" -p $$ >/dev/null

# ---------------------------------------------------------------------------------------
# Temporary build directory, mounts, cleanup
# ---------------------------------------------------------------------------------------
# Mount points below $1, deepest first.
mounts_under() {
  findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r
}
unmount_all_under() {
  local m
  for m in $(mounts_under "$1"); do umount "$m" 2>/dev/null || umount -l "$m"; done
}
# Never rm -rf a tree that still has something mounted in it (a bind mount of /etc/hosts or
# the shared .deb cache would be emptied through it).
remove_tree() {
  [ -e "$1" ] || return 0
  unmount_all_under "$1"
  if [ -n "$(mounts_under "$1")" ]; then
    log "WARNING: not removing $1: something is still mounted below it"
    return 0
  fi
  rm -rf --one-file-system "$1"
}

# Leftovers of interrupted builds (we hold the lock, so nobody else is building).
for stale in "$CACHE_ROOT"/.build-*; do
  [ -e "$stale" ] || continue
  log "removing leftover build directory $stale"
  remove_tree "$stale"
done

BUILD="$CACHE_ROOT/.build-$KEY-$$"
ROOT="$BUILD/rootfs"
STAGE="$BUILD/out"
mkdir -p "$ROOT" "$STAGE"
cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  remove_tree "$BUILD"
  [ $rc -eq 0 ] || log "build FAILED after $(elapsed) (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_chroot() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
    DEBIAN_FRONTEND=noninteractive "$@"
}
APT=(apt-get -q -y -o DPkg::Lock::Timeout=600 -o APT::Install-Recommends=false
     -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

mount_chroot() {
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sysfs "$ROOT/sys"
  mkdir -p "$ROOT/dev/pts"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts"
  # Name resolution of the archive inside the chroot: the host's files, bind-mounted only
  # while installing so nothing host-specific ends up in the image.
  local f
  for f in hosts resolv.conf; do
    rm -f "$ROOT/etc/$f"
    touch "$ROOT/etc/$f"
    mount --bind "/etc/$f" "$ROOT/etc/$f"
  done
  mount --bind "$CACHE_ROOT/debs" "$ROOT/var/cache/apt/archives"
}

# ---------------------------------------------------------------------------------------
# 1. Base system
# ---------------------------------------------------------------------------------------
log "building image $KEY in $BUILD (log lines below are timestamped; expect ~15 min)"
log "debootstrap $SUITE (minbase, main+contrib, default mirror)"
debootstrap --variant=minbase --components=main,contrib --cache-dir="$CACHE_ROOT/debs" \
  "$SUITE" "$ROOT" >"$BUILD/debootstrap.log" 2>&1 || {
  tail -n 30 "$BUILD/debootstrap.log" >&2
  [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
}
log "debootstrap done ($(elapsed))"

# The mirror debootstrap used, read back from the chroot (no host name written here).
MIRROR=$(awk '$1 == "deb" { print $2; exit }' "$ROOT/etc/apt/sources.list")
[ -n "$MIRROR" ] || die "cannot read the mirror from $ROOT/etc/apt/sources.list"
echo "deb $MIRROR $SUITE-backports main contrib" >"$ROOT/etc/apt/sources.list.d/backports.list"

# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

# Small initramfs: only the modules listed in /etc/initramfs-tools/modules (written below),
# no resume device to wait for.
mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
printf 'MODULES=list\nCOMPRESS=zstd\n' >"$ROOT/etc/initramfs-tools/conf.d/zfsvm.conf"
echo 'RESUME=none' >"$ROOT/etc/initramfs-tools/conf.d/resume"

mount_chroot

log "apt-get update"
in_chroot "${APT[@]}" update >"$BUILD/apt.log" 2>&1 || { tail -n 30 "$BUILD/apt.log" >&2; die "apt-get update failed"; }

# ---------------------------------------------------------------------------------------
# 2. Kernel, init, ssh
# ---------------------------------------------------------------------------------------
log "installing kernel, systemd, openssh-server"
in_chroot "${APT[@]}" install linux-image-amd64 linux-headers-amd64 systemd-sysv udev kmod \
  initramfs-tools openssh-server iproute2 procps >>"$BUILD/apt.log" 2>&1 || {
  tail -n 40 "$BUILD/apt.log" >&2; die "installing the kernel failed"; }
KVERS=$(ls "$ROOT/lib/modules")
[ "$(wc -w <<<"$KVERS")" -eq 1 ] || die "expected one guest kernel, found: $KVERS"
KVER=$KVERS
log "guest kernel $KVER ($(elapsed))"

# ---------------------------------------------------------------------------------------
# 3. OpenZFS 2.3 from bookworm-backports, built for the GUEST kernel
# ---------------------------------------------------------------------------------------
log "installing zfs-dkms zfsutils-linux from $SUITE-backports"
echo 'zfs-dkms zfs-dkms/note-incompatible-licenses note' | in_chroot debconf-set-selections
in_chroot "${APT[@]}" -t "$SUITE-backports" install zfs-dkms zfsutils-linux >>"$BUILD/apt.log" 2>&1 || {
  tail -n 40 "$BUILD/apt.log" >&2; die "installing zfs failed"; }
ZFS_SRC=$(cd "$ROOT/usr/src" && ls -d zfs-* | sort -V | tail -n 1)
ZVER=${ZFS_SRC#zfs-}
[ -n "$ZVER" ] || die "no zfs source in $ROOT/usr/src"
ZPKG=$(in_chroot dpkg-query -W -f '${Version}' zfsutils-linux)
log "zfs $ZVER (package $ZPKG) installed ($(elapsed))"

# DKMS in a chroot builds for `uname -r` (the host's kernel, which has no headers here) and
# skips the guest's kernel: build for it explicitly.
[ "$(ls "$ROOT/lib/modules")" = "$KVER" ] || die "installing zfs changed the guest kernels: $(ls "$ROOT/lib/modules")"
log "dkms install zfs/$ZVER for $KVER (compiles the module; ~8-14 min)"
if in_chroot dkms status -m zfs -v "$ZVER" -k "$KVER" 2>/dev/null | grep ': installed' >/dev/null; then
  log "(the package's own postinst already built it)"
elif ! in_chroot dkms install -m zfs -v "$ZVER" -k "$KVER" >"$BUILD/dkms.log" 2>&1; then
  tail -n 40 "$BUILD/dkms.log" >&2
  tail -n 40 "$ROOT/var/lib/dkms/zfs/$ZVER/build/make.log" >&2 2>/dev/null || true
  die "dkms install failed"
fi
ZKO=$(find "$ROOT/lib/modules/$KVER" -name 'zfs.ko*' | head -n 1)
[ -n "$ZKO" ] || die "dkms reported success but there is no zfs.ko for $KVER"
in_chroot depmod -a "$KVER"
log "zfs module built: ${ZKO#"$ROOT"} ($(elapsed))"
# The object files of the module build are not needed in the image.
rm -rf --one-file-system "$ROOT/var/lib/dkms/zfs/$ZVER/build"

# ---------------------------------------------------------------------------------------
# 4. Guest configuration
# ---------------------------------------------------------------------------------------
log "configuring the guest"
echo zfsvm >"$ROOT/etc/hostname"
cat >"$ROOT/etc/fstab" <<'EOF'
# The root filesystem is mounted read-write by the kernel (root=/dev/vda rw); no fsck.
/dev/vda  /     ext4   rw,noatime,errors=remount-ro  0 0
tmpfs     /tmp  tmpfs  rw,nosuid,nodev,size=256m     0 0
EOF

# Modules the initramfs needs to mount /dev/vda.
cat >>"$ROOT/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
ext4
crc32c_generic
EOF

# Static address for qemu user-mode networking: no DHCP wait, and no systemd-networkd (which
# takes ~14 s to start under TCG). Started as soon as udev announces eth0.
cat >"$ROOT/etc/systemd/system/zfsvm-net.service" <<'EOF'
[Unit]
Description=Static address for qemu user-mode networking
DefaultDependencies=no
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
Before=network.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=ip link set eth0 up
ExecStart=ip addr add 10.0.2.15/24 dev eth0
ExecStart=ip route add default via 10.0.2.2 dev eth0

[Install]
WantedBy=sys-subsystem-net-devices-eth0.device
EOF
# (Enabled by hand: `systemctl enable` in the chroot exits 0 without creating this link.)
mkdir -p "$ROOT/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants"
ln -sfn ../zfsvm-net.service "$ROOT/etc/systemd/system/sys-subsystem-net-devices-eth0.device.wants/zfsvm-net.service"

# sshd: root by key only, no PAM/logind session setup (nothing to wait for), no DNS lookups.
mkdir -p "$ROOT/etc/ssh/sshd_config.d" "$ROOT/root/.ssh"
cat >"$ROOT/etc/ssh/sshd_config.d/zfsvm.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
MaxSessions 64
MaxStartups 64:30:128
EOF
# Skip the config test (`sshd -t`, ~1 s under TCG) before every start.
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\n' >"$ROOT/etc/systemd/system/ssh.service.d/zfsvm.conf"
ssh-keygen -q -t ed25519 -N '' -C zfs-offsite-vm -f "$STAGE/id_ed25519"
install -m 600 "$STAGE/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"
chmod 700 "$ROOT/root/.ssh"

# zfs.ko must not load at boot: vm.sh loads it after ssh is up (it takes 15-18 s under TCG,
# and the warm-start state is saved before it loads so that every VM seeds its own GUIDs).
# `blacklist` stops alias-based autoloading (e.g. opening the static /dev/zfs node);
# an explicit `modprobe zfs` still works.
cat >"$ROOT/etc/modprobe.d/zfsvm-noautoload.conf" <<'EOF'
blacklist zfs
blacklist spl
EOF
rm -f "$ROOT/etc/modules-load.d/zfs.conf" "$ROOT/usr/lib/modules-load.d/zfs.conf"
# Units that would load zfs.ko, import pools or run periodic jobs; getty; apt/e2scrub/fstrim
# timers. Masked (not just disabled) so no dependency can pull them in.
MASK_UNITS=(
  zfs-load-module.service zfs-import-cache.service zfs-import-scan.service zfs-import.service
  zfs-mount.service zfs-share.service zfs-zed.service zfs-volume-wait.service zfs.target
  zfs-import.target zfs-volumes.target
  zfs-scrub-monthly@.timer zfs-scrub-weekly@.timer zfs-trim-monthly@.timer zfs-trim-weekly@.timer
  apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service
  e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer logrotate.timer
  man-db.timer systemd-tmpfiles-clean.timer
  getty@tty1.service serial-getty@ttyS0.service getty.target console-getty.service
  systemd-timesyncd.service systemd-networkd-wait-online.service
  systemd-journal-flush.service systemd-logind.service
  systemd-networkd.service systemd-network-generator.service systemd-pstore.service
  systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount
  systemd-random-seed.service systemd-update-utmp.service systemd-update-utmp-runlevel.service
  modprobe@efi_pstore.service modprobe@fuse.service modprobe@dm_mod.service modprobe@loop.service
  modprobe@drm.service modprobe@configfs.service
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
  sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount
)
for u in "${MASK_UNITS[@]}"; do ln -sfn /dev/null "$ROOT/etc/systemd/system/$u"; done
# A small, volatile journal (nothing to flush to disk at boot).
mkdir -p "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' >"$ROOT/etc/systemd/journald.conf.d/zfsvm.conf"
ln -sfn /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"

log "update-initramfs for $KVER"
in_chroot update-initramfs -u -k "$KVER" >"$BUILD/initramfs.log" 2>&1 || {
  tail -n 30 "$BUILD/initramfs.log" >&2; die "update-initramfs failed"; }

# ---------------------------------------------------------------------------------------
# 5. Leave the chroot; kernel, initrd and disk image
# ---------------------------------------------------------------------------------------
unmount_all_under "$ROOT"
[ -z "$(mounts_under "$ROOT")" ] || die "could not unmount everything below $ROOT"
rm -f "$ROOT/usr/sbin/policy-rc.d" "$ROOT/etc/hosts" "$ROOT/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tzfsvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
echo 'nameserver 10.0.2.3' >"$ROOT/etc/resolv.conf"
rm -rf --one-file-system "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/apt/* "$ROOT"/tmp/*
rm -f "$ROOT"/var/cache/apt/archives/*.deb

cp "$ROOT/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$STAGE/initrd.img"
# The uncompressed ELF kernel boots through its PVH entry point (a few seconds faster under
# TCG than the bzImage's decompressor). Debian compresses the payload with XZ.
# (xz reads a file, not a pipe: it stops after the first stream, and the writer's SIGPIPE
# would fail the pipeline under pipefail.)
extract_vmlinux() {
  local off
  off=$(grep -abo -m1 $'\xfd7zXZ' "$STAGE/vmlinuz" | head -n 1 | cut -d: -f1) || return 1
  [ -n "$off" ] || return 1
  tail -c +"$((off + 1))" "$STAGE/vmlinuz" >"$BUILD/payload.xz"
  xz -dc --single-stream "$BUILD/payload.xz" >"$STAGE/vmlinux.tmp" 2>/dev/null || return 1
  rm -f "$BUILD/payload.xz"
  [ "$(head -c 4 "$STAGE/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || return 1
  mv "$STAGE/vmlinux.tmp" "$STAGE/vmlinux"
}
if LC_ALL=C extract_vmlinux; then
  log "extracted vmlinux ($(du -h "$STAGE/vmlinux" | cut -f1)) for PVH boot"
else
  rm -f "$STAGE/vmlinux.tmp"
  log "could not extract vmlinux; the VM will boot vmlinuz"
fi

SIZE_MB=$(( $(du -sm --one-file-system "$ROOT" | cut -f1) + 1024 ))
log "mkfs.ext4 -d (${SIZE_MB} MiB filesystem) + qemu-img convert"
mkfs.ext4 -q -F -L zfsvm-root -E root_owner=0:0 -d "$ROOT" "$BUILD/root.raw" "${SIZE_MB}M"
qemu-img convert -f raw -O qcow2 "$BUILD/root.raw" "$STAGE/root.qcow2"
rm -f "$BUILD/root.raw"

cat >"$STAGE/manifest" <<EOF
key=$KEY
suite=$SUITE
kernel=$KVER
zfs=$ZVER
zfs_package=$ZPKG
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$(( $(date +%s) - T0 ))
EOF

# Atomic publication: the directory appears complete or not at all.
rm -rf --one-file-system "$OUT"
mv "$STAGE" "$OUT"
log "image ready in $OUT after $(elapsed): kernel $KVER, zfs $ZVER"

# Images built by older versions of this script are not used any more (1.2 GB each).
if [ "${ZFS_VM_KEEP_OLD_IMAGES:-0}" != 1 ]; then
  for old in "$CACHE_ROOT"/*; do
    name=${old##*/}
    [[ "$name" =~ ^[0-9a-f]{16}$ ]] && [ "$name" != "$KEY" ] && [ -d "$old" ] || continue
    log "removing the image of an older recipe: $old"
    rm -rf --one-file-system "$old"
  done
fi
echo "$OUT" >&3
