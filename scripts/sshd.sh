#!/usr/bin/env bash
# Start/stop a private OpenSSH SFTP server on 127.0.0.1 that imitates a storage box
# (Hetzner-style: SFTP only, no shell, chrooted, paths relative to the login directory).
#
#   scripts/sshd.sh start    install openssh-server/-client if missing, create the box user,
#                            keys and config, start sshd, wait until it answers, write $SFTP_DIR/env
#   scripts/sshd.sh stop     stop our sshd and remove $SFTP_DIR and the chroot
#   scripts/sshd.sh status   exit 0 if our sshd is up and answers SFTP with the generated key
#   scripts/sshd.sh env      print the env file (after start)
#
# Environment:
#   SFTP_DIR      run directory: config, host key, client keys, authorized_keys, pid file, log,
#                 known_hosts, env (default /tmp/zfs-offsite-sshd)
#   SFTP_PORT     port on 127.0.0.1 (default 2223)
#   SFTP_USER     the storage-box user, a local system user created if missing
#                 (default zfsoffsite-box)
#   SFTP_CHROOT   the box's root directory (default /srv/zfs-offsite-sshd-$SFTP_PORT). sshd
#                 requires EVERY component of a ChrootDirectory path to be root-owned and not
#                 group/world-writable, so it cannot live under /tmp (mode 1777) with the rest.
#
# The box, as its user sees it (chrooted, internal-sftp only):
#   /            root-owned, not writable
#   /home        the login directory, owned by the user: relative paths start here
#   /readonly    root-owned directory with a file `hello.txt`: for permission-denied tests
#
# After `start`, `source "$SFTP_DIR/env"` sets SFTP_TEST_URL (sftp://user@127.0.0.1:PORT/archive,
# relative to /home), SFTP_TEST_HOST, SFTP_TEST_PORT, SFTP_TEST_USER, SFTP_TEST_KEY (unencrypted
# ed25519 client key), SFTP_TEST_KEY_ENCRYPTED + SFTP_TEST_KEY_PASSPHRASE (the same key type,
# passphrase-protected), SFTP_TEST_PASSWORD (a throwaway password of the box user),
# SFTP_TEST_KNOWN_HOSTS (a known_hosts file holding the server's host key) and
# SFTP_TEST_HOST_FINGERPRINT (SHA256:… of that key), SFTP_TEST_CHROOT (the box root on this host).
#
# Needs root: sshd must switch to the box user and chroot. No system service is used or touched.
set -euo pipefail

SFTP_DIR=$(realpath -m "${SFTP_DIR:-/tmp/zfs-offsite-sshd}")
SFTP_PORT=${SFTP_PORT:-2223}
SFTP_USER=${SFTP_USER:-zfsoffsite-box}
SFTP_CHROOT=$(realpath -m "${SFTP_CHROOT:-/srv/zfs-offsite-sshd-$SFTP_PORT}")
HOST=127.0.0.1

# Throwaway secrets: the server only listens on 127.0.0.1 and only holds test data.
PASSWORD=zfsoffsite-box-test-password-0123
PASSPHRASE=zfsoffsite-test-passphrase

CONF="$SFTP_DIR/sshd_config"
PIDFILE="$SFTP_DIR/sshd.pid"
LOGFILE="$SFTP_DIR/sshd.log"
HOSTKEY="$SFTP_DIR/ssh_host_ed25519_key"
CLIENTKEY="$SFTP_DIR/client_ed25519"
CLIENTKEY_ENC="$SFTP_DIR/client_ed25519_encrypted"
KNOWN_HOSTS="$SFTP_DIR/known_hosts"
SSHD=/usr/sbin/sshd
# The lock lives next to the run dir (not inside it: `stop` removes the run dir).
LOCK="${SFTP_DIR%/}.lock"

log() { echo "sshd.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# alive, kill_wait
# shellcheck source=lib/process.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/process.sh"

ensure_packages() {
  local missing=()
  [ -x "$SSHD" ] || missing+=(openssh-server)
  command -v sftp >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install the Debian packages"
  log "installing Debian packages: ${missing[*]}"
  local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update >&2
  "${apt[@]}" install -y --no-install-recommends openssh-server openssh-client >&2
}

# pid of OUR sshd (the pid file's process, if its command line names our config file).
sshd_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid=$(<"$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

# True if the server answers SFTP for the box user with the generated key and host key.
sftp_answers() {
  [ -s "$CLIENTKEY" ] && [ -s "$KNOWN_HOSTS" ] || return 1
  echo 'pwd' | timeout 10 sftp -q -b - -i "$CLIENTKEY" -P "$SFTP_PORT" \
    -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes \
    -o ConnectTimeout=5 "$SFTP_USER@$HOST" 2>/dev/null | grep -q '/home'
}

is_up() { sshd_pid >/dev/null && sftp_answers; }

port_free() { ! (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

fingerprint() { ssh-keygen -l -E sha256 -f "$1.pub" | awk '{print $2}'; }

write_env() {
  cat >"$SFTP_DIR/env.tmp" <<EOF
export SFTP_TEST_URL=sftp://$SFTP_USER@$HOST:$SFTP_PORT/archive
export SFTP_TEST_HOST=$HOST
export SFTP_TEST_PORT=$SFTP_PORT
export SFTP_TEST_USER=$SFTP_USER
export SFTP_TEST_KEY=$CLIENTKEY
export SFTP_TEST_KEY_ENCRYPTED=$CLIENTKEY_ENC
export SFTP_TEST_KEY_PASSPHRASE=$PASSPHRASE
export SFTP_TEST_PASSWORD=$PASSWORD
export SFTP_TEST_KNOWN_HOSTS=$KNOWN_HOSTS
export SFTP_TEST_HOST_FINGERPRINT=$(fingerprint "$HOSTKEY")
export SFTP_TEST_CHROOT=$SFTP_CHROOT
EOF
  mv "$SFTP_DIR/env.tmp" "$SFTP_DIR/env"
}

ensure_user() {
  if ! id -u "$SFTP_USER" >/dev/null 2>&1; then
    log "creating system user $SFTP_USER (SFTP only, no shell)"
    useradd --system --no-create-home --home-dir /home --shell /usr/sbin/nologin "$SFTP_USER"
  fi
  # A locked account (no password) is refused by sshd for every method; set the throwaway one.
  echo "$SFTP_USER:$PASSWORD" | chpasswd
}

# The box: every chroot component root-owned 0755; /home is the user's writable login dir.
make_chroot() {
  mkdir -p "$SFTP_CHROOT"
  chown root:root "$SFTP_CHROOT"
  chmod 0755 "$SFTP_CHROOT"
  mkdir -p "$SFTP_CHROOT/home" "$SFTP_CHROOT/readonly"
  chown "$SFTP_USER:" "$SFTP_CHROOT/home"
  chmod 0755 "$SFTP_CHROOT/home"
  chown root:root "$SFTP_CHROOT/readonly"
  chmod 0755 "$SFTP_CHROOT/readonly"
  echo hello >"$SFTP_CHROOT/readonly/hello.txt"
  chmod 0644 "$SFTP_CHROOT/readonly/hello.txt"
}

make_keys() {
  [ -s "$HOSTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C zfs-offsite-test-host -f "$HOSTKEY"
  [ -s "$CLIENTKEY" ] || ssh-keygen -q -t ed25519 -N '' -C zfs-offsite-test-client -f "$CLIENTKEY"
  [ -s "$CLIENTKEY_ENC" ] || ssh-keygen -q -t ed25519 -N "$PASSPHRASE" -C zfs-offsite-test-client-enc -f "$CLIENTKEY_ENC"
  mkdir -p "$SFTP_DIR/authorized_keys"
  cat "$CLIENTKEY.pub" "$CLIENTKEY_ENC.pub" >"$SFTP_DIR/authorized_keys/$SFTP_USER"
  chmod 0644 "$SFTP_DIR/authorized_keys/$SFTP_USER"
  # known_hosts in OpenSSH's form for a non-22 port: [host]:port type key
  echo "[$HOST]:$SFTP_PORT $(cut -d' ' -f1,2 "$HOSTKEY.pub")" >"$KNOWN_HOSTS"
}

write_conf() {
  cat >"$CONF" <<EOF
# Private test sshd for zfs-offsite (scripts/sshd.sh). Not a system service.
Port $SFTP_PORT
ListenAddress $HOST
HostKey $HOSTKEY
PidFile $PIDFILE
AuthorizedKeysFile $SFTP_DIR/authorized_keys/%u
# The key files live under /tmp (world-writable), which StrictModes would refuse.
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $SFTP_USER
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTTY no
PermitTunnel no
PrintMotd no
UseDNS no
LogLevel VERBOSE
# The tests open many short connections at once.
MaxStartups 200:30:400
MaxAuthTries 10
Subsystem sftp internal-sftp
Match User $SFTP_USER
    ChrootDirectory $SFTP_CHROOT
    ForceCommand internal-sftp -d /home
EOF
}

# Seconds (one decimal) since a `date +%s%N` timestamp.
elapsed() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

do_stop() {
  local pid i
  if pid=$(sshd_pid); then
    # SIGTERM makes the listener exit; session processes of open connections go with their clients.
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$SFTP_DIR"
  # Only ever remove a chroot this script made (it holds the marker files we created).
  if [ -d "$SFTP_CHROOT/home" ] && [ -f "$SFTP_CHROOT/readonly/hello.txt" ]; then
    rm -rf "$SFTP_CHROOT"
  fi
}

do_start() {
  if is_up; then
    write_env
    log "already running: $SFTP_USER@$HOST:$SFTP_PORT (env: $SFTP_DIR/env)"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "must run as root (sshd switches to the box user and chroots)"
  ensure_packages
  if [ -e "$SFTP_DIR" ]; then
    log "cleaning up a stale run dir $SFTP_DIR"
    do_stop
  fi
  port_free "$SFTP_PORT" || die "port $SFTP_PORT on $HOST is in use by another program (set SFTP_PORT)"

  local t0 i
  t0=$(date +%s%N)
  mkdir -p "$SFTP_DIR"
  chmod 0755 "$SFTP_DIR"
  ensure_user
  make_chroot
  make_keys
  write_conf
  # sshd's privilege-separation directory (normally made by the system service).
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
  "$SSHD" -t -f "$CONF" 2>"$SFTP_DIR/sshd-t.out" || { cat "$SFTP_DIR/sshd-t.out" >&2; die "sshd rejects $CONF"; }
  # Daemonises once listening and writes the pid file; fd 9 (our lock) is not inherited.
  "$SSHD" -f "$CONF" -E "$LOGFILE" </dev/null 9>&-
  for ((i = 0; i < 100; i++)); do
    sftp_answers && break
    sleep 0.1
  done
  if ! is_up; then
    tail -n 20 "$LOGFILE" >&2 || true
    die "sshd did not answer SFTP on $HOST:$SFTP_PORT"
  fi
  write_env
  log "SFTP ready on $SFTP_USER@$HOST:$SFTP_PORT after $(elapsed "$t0")s; source $SFTP_DIR/env"
}

do_status() {
  if is_up; then
    echo "running: $SFTP_USER@$HOST:$SFTP_PORT (env: $SFTP_DIR/env)"
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
exec 9>"$LOCK"
flock -w 300 9 || die "could not lock $LOCK"
case "$1" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) cat "$SFTP_DIR/env" ;;
  *) usage ;;
esac
