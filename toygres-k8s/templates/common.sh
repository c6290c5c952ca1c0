# --- toygres job helpers (prepended to every job script) -----------------------------------------
# A job pod runs two containers side by side that share the directory TOYGRES_EXCHANGE (an
# emptyDir): one in a PostgreSQL image (pg_dump/psql/pg_restore of the right major), one in the
# toolbox (transfer program, zstd, jq). Bytes pass through FIFOs there, never through files:
#   NAME.fifo     created by the reading side just before it reads object NAME
#   NAME.done     written by the writing side after NAME's bytes: "0" when all of them were
#                 written and checked, else what went wrong; the reading side fails on anything but "0"
#   SIDE.failed   written by a side that fails; the other one stops waiting and fails too
set -euo pipefail
umask 077
log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${TOYGRES_STEP:-toygres}" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
: "${TOYGRES_EXCHANGE:?missing}" "${TOYGRES_SIDE:?missing}" "${TOYGRES_PEER:?missing}"
exchange=$TOYGRES_EXCHANGE

# await FILE: waits until FILE exists; fails as soon as the other container has failed.
await() {
  until [[ -e "$1" ]]; do
    [[ ! -e "$exchange/$TOYGRES_PEER.failed" ]] || fail "the $TOYGRES_PEER container failed; see its log"
    sleep 0.2
  done
}

# publish FILE TEXT: writes FILE atomically (the other side sees all of it or nothing).
publish() { printf '%s' "$2" >"$1.tmp" && mv "$1.tmp" "$1"; }

# Opens every FIFO read-write and closes it again: a peer blocked opening one (for reading or
# writing) wakes up and sees end of file or a broken pipe. Repeated for a few seconds, for a peer
# that was just about to open one.
unblock_fifos() {
  local f round
  for round in 1 2 3 4 5 6 7 8 9 10; do
    for f in "$exchange"/*.fifo; do
      if [[ -p "$f" ]]; then exec 9<>"$f" && exec 9>&-; fi
    done
    sleep 0.5
  done
}

# Cleanup steps run at exit (last added first); a failure marks this side failed for the peer.
exit_steps=()
on_exit() {
  local rc=$? i
  if ((rc != 0)); then
    : >"$exchange/$TOYGRES_SIDE.failed"
    unblock_fifos
  fi
  for ((i = ${#exit_steps[@]} - 1; i >= 0; i--)); do eval "${exit_steps[$i]}" || true; done
  exit "$rc"
}
trap on_exit EXIT

# progress DONE TOTAL: a line the executor reads from the log for byte progress (TOTAL may be "-").
progress() { log "toygres-progress: $1 ${2:--}"; }

# send NAME COMMAND...: runs COMMAND into NAME's FIFO once the reading side opened it, then tells
# the reader how it ended.
send() {
  local name=$1 rc=0
  shift
  await "$exchange/$name.fifo"
  "$@" >"$exchange/$name.fifo" || rc=$?
  publish "$exchange/$name.done" "$rc"
  ((rc == 0)) || fail "$1 failed (exit $rc) writing $name"
}

# receive NAME COMMAND...: runs COMMAND on NAME's FIFO, then waits for the writing side's verdict
# on NAME (NAME.done, written once it has checked NAME's last byte): what COMMAND read counts only
# when COMMAND succeeded and the verdict is "0"; anything else fails. While COMMAND runs, a watchdog
# keeps opening the FIFO once the other side has failed, so that COMMAND, blocked opening a FIFO no
# writer will open, sees its end instead of waiting forever.
receive() {
  local name=$1 rc=0 verdict watchdog
  shift
  rm -f "$exchange/$name.fifo"
  mkfifo "$exchange/$name.fifo"
  (
    until [[ -e "$exchange/$TOYGRES_PEER.failed" ]]; do sleep 0.5; done
    while [[ -p "$exchange/$name.fifo" ]]; do
      exec 9<>"$exchange/$name.fifo" && exec 9>&-
      sleep 0.5
    done
  ) &
  watchdog=$!
  "$@" <"$exchange/$name.fifo" || rc=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  if ((rc != 0)); then
    [[ ! -e "$exchange/$name.done" ]] || log "the $TOYGRES_PEER container says of $name: $(cat "$exchange/$name.done")"
    fail "$1 failed (exit $rc) reading $name"
  fi
  await "$exchange/$name.done"
  verdict=$(cat "$exchange/$name.done")
  rm -f "$exchange/$name.fifo"
  [[ "$verdict" == 0 ]] || fail "the $TOYGRES_PEER container refused $name, nothing is marked restored: $verdict"
}
# Ends the container successfully when the volume's marker ($TOYGRES_MARKER) says it already holds
# image $TOYGRES_IMAGE_ID: a re-run of a restore that finished. $1: what is then skipped, for the log.
exit_if_restored() {
  if [[ -f "$TOYGRES_MARKER" && "$(cat "$TOYGRES_MARKER")" == "$TOYGRES_IMAGE_ID" ]]; then
    log "volume already holds image $TOYGRES_IMAGE_ID${1:+; $1}"
    exit 0
  fi
}
# --- end of job helpers ------------------------------------------------------------------------------
