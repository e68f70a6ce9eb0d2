# Process helpers shared by the server scripts (rgw.sh, sshd.sh, swift.sh); sourced, not run.

# True if process $1 exists and is not a zombie. Daemons are reparented to PID 1, which may reap
# them only after a second or so; a zombie holds no ports or memory any more.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# kill_wait SIGNAL SECONDS PID...: send SIGNAL, wait up to SECONDS for exit, then SIGKILL.
kill_wait() {
  local sig=$1 secs=$2; shift 2
  [ $# -gt 0 ] || return 0
  kill "-$sig" "$@" 2>/dev/null || true
  local i p any
  for ((i = 0; i < secs * 10; i++)); do
    any=0
    for p in "$@"; do alive "$p" && any=1; done
    [ $any -eq 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}
