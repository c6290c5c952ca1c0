# --- toygres transfer helpers (after common.sh, before backup-upload.sh and restore-fetch.sh) --------
# The BlobStore's transfer arrives in the environment:
#   TOYGRES_TRANSFER_PROGRAM    the copy program (azcopy)
#   TOYGRES_TRANSFER_LOGIN      shell-quoted arguments of the login step (may be empty)
#   TOYGRES_TRANSFER_UPLOAD     shell-quoted arguments uploading stdin to {url}
#   TOYGRES_TRANSFER_DOWNLOAD   shell-quoted arguments writing {url} to stdout
#   TOYGRES_TRANSFER_BASE_URL   container URL plus the image prefix, without secrets
#   TOYGRES_TRANSFER_URL_QUERY  (from a Secret, optional) query appended to every URL, e.g. a SAS
# URLs are never logged: they may carry a SAS.
# bash 5.2 would otherwise put the matched text for every '&' of a replacement (a SAS has several).
shopt -u patsub_replacement 2>/dev/null || true

: "${TOYGRES_TRANSFER_PROGRAM:?missing}" "${TOYGRES_TRANSFER_BASE_URL:?missing}"
eval "transfer_login=(${TOYGRES_TRANSFER_LOGIN:-})"
eval "transfer_upload=(${TOYGRES_TRANSFER_UPLOAD:-})"
eval "transfer_download=(${TOYGRES_TRANSFER_DOWNLOAD:-})"

work=$(mktemp -d)
exit_steps+=('rm -rf "$work"')

# Strips query strings (SAS tokens) from the copy program's output before it reaches the job log.
redact_urls() { sed -E 's/\?[^[:space:]"'\'']*/?<redacted>/g'; }

object_url() {
  local url="${TOYGRES_TRANSFER_BASE_URL%/}/$1"
  if [[ -n "${TOYGRES_TRANSFER_URL_QUERY:-}" ]]; then url="$url?${TOYGRES_TRANSFER_URL_QUERY#\?}"; fi
  printf '%s' "$url"
}

# The errors of azcopy's newest log (azcopy says little on the console in pipe mode), URLs redacted.
transfer_log_errors() {
  local newest
  newest=$(ls -t "${AZCOPY_LOG_LOCATION:-$HOME/.azcopy}"/*.log 2>/dev/null | grep -v scanning | head -n 1) || true
  if [[ -n "$newest" ]]; then grep -E 'ERROR|<Code>|<Message>' "$newest" | tail -n 5 | redact_urls >&2 || true; fi
}

# run_transfer NAME ARG...: runs the copy program with {url} replaced by NAME's URL.
run_transfer() {
  local name=$1 url a args=() rc=0
  url=$(object_url "$name")
  shift
  for a in "$@"; do args+=("${a//\{url\}/"$url"}"); done
  "$TOYGRES_TRANSFER_PROGRAM" "${args[@]}" 2> >(redact_urls >&2) || rc=$?
  if ((rc != 0)); then
    log "$TOYGRES_TRANSFER_PROGRAM failed (exit $rc) moving $name"
    transfer_log_errors
    return "$rc"
  fi
}

# A failed login is not the end: `azcopy login` fails where it cannot store its token (keyctl is
# blocked by RuntimeDefault seccomp) although every copy authenticates itself (AZCOPY_AUTO_LOGIN_TYPE);
# a copy that really lacks credentials fails with the storage service's own error.
transfer_login() {
  local rc=0
  if ((${#transfer_login[@]} > 0)); then
    log "logging in with $TOYGRES_TRANSFER_PROGRAM"
    "$TOYGRES_TRANSFER_PROGRAM" "${transfer_login[@]}" 2>&1 | redact_urls >&2 || rc=$?
    if ((rc != 0)); then log "WARNING: the login step failed (exit $rc); going on, each copy authenticates itself"; fi
  fi
}

# block_size_mb EXPECTED: the smallest upload block size (whole MiB, at least 16, at most 4000) for
# which an object of EXPECTED bytes fits in a block blob's 50,000 blocks (Azure's limits: 50,000
# blocks of up to 4000 MiB, about 190.7 TiB). A piped upload cannot learn its size beforehand.
block_size_mb() {
  local mb=$((($1 + 50000 * 1048576 - 1) / (50000 * 1048576)))
  ((mb >= 16)) || mb=16
  ((mb <= 4000)) || mb=4000
  printf '%s' "$mb"
}

# upload_args EXPECTED: the upload arguments, their --block-size-mb raised (never lowered) so that
# EXPECTED bytes fit in 50,000 blocks; azcopy without the option gets it. Other programs' arguments
# stay as they are.
upload_args() {
  local mb i set=0 args=("${transfer_upload[@]}")
  mb=$(block_size_mb "$1")
  for i in "${!args[@]}"; do
    if [[ "${args[$i]}" == --block-size-mb && -n "${args[$((i + 1))]+x}" ]]; then
      set=1
      [[ "${args[$((i + 1))]}" =~ ^[0-9]+$ ]] && ((args[i + 1] >= mb)) || args[i + 1]=$mb
    elif [[ "${args[$i]}" =~ ^--block-size-mb=(.*)$ ]]; then
      set=1
      [[ "${BASH_REMATCH[1]}" =~ ^[0-9]+$ ]] && ((BASH_REMATCH[1] >= mb)) || args[i]="--block-size-mb=$mb"
    fi
  done
  if ((set == 0)) && [[ "$(basename "$TOYGRES_TRANSFER_PROGRAM")" == azcopy ]]; then args+=(--block-size-mb "$mb"); fi
  printf '%s\0' "${args[@]}"
}

# upload NAME [EXPECTED]: uploads standard input as object NAME; EXPECTED (bytes) bounds its size
# from above and sets the block size (upload_args).
upload() {
  local args=()
  if [[ -n "${2:-}" ]]; then
    mapfile -d '' -t args < <(upload_args "$2")
  else
    args=("${transfer_upload[@]}")
  fi
  run_transfer "$1" "${args[@]}" | redact_urls >&2
}

# download NAME: writes object NAME to standard output.
download() { run_transfer "$1" "${transfer_download[@]}"; }

# count_stream PREFIX: copies stdin to stdout, writing the byte count to PREFIX.raw.
count_stream() {
  rm -f "$1.raw.fifo"
  mkfifo "$1.raw.fifo"
  (wc -c <"$1.raw.fifo" | tr -d ' ' >"$1.raw") &
  tee "$1.raw.fifo"
  wait
}

# hash_stream PREFIX [whole]: copies stdin to stdout, writing the sha256 (hex) to PREFIX.sha256 and
# the byte count to PREFIX.size; both files are complete when the function returns. With `whole`,
# a reader that stops early (standard output closed) does not stop it: it hashes on to the end of
# its input (GNU tee -p), so that what was read is still checked (restore-fetch.sh).
hash_stream() {
  local tee_args=()
  if [[ "${2:-}" == whole ]]; then tee_args=(-p); fi
  rm -f "$1.sum.fifo" "$1.size.fifo"
  mkfifo "$1.sum.fifo" "$1.size.fifo"
  (sha256sum <"$1.sum.fifo" | cut -d' ' -f1 >"$1.sha256") &
  (wc -c <"$1.size.fifo" | tr -d ' ' >"$1.size") &
  tee "${tee_args[@]}" "$1.sum.fifo" "$1.size.fifo"
  wait
}
# report_dd DONE TOTAL: reads the stderr of `dd status=progress` (updates end in CR) and logs every
# fifth update as a progress line: DONE plus dd's count, of TOTAL (or of that sum, once it is more).
# dd's other messages pass through, but its record counts.
report_dd() {
  local chunk line seen=0 n
  while IFS= read -r -d $'\r' chunk || [[ -n "$chunk" ]]; do
    while IFS= read -r line; do
      if [[ "$line" =~ ^([0-9]+)\ bytes.*\ copied, ]]; then
        seen=$((seen + 1))
        ((seen % 5 == 0)) || continue
        n=$(($1 + BASH_REMATCH[1]))
        progress "$n" "$((n > $2 ? n : $2))"
      elif [[ -n "$line" && ! "$line" =~ \ records\ (in|out)$ ]]; then
        printf '%s\n' "$line" >&2
      fi
    done <<<"$chunk"
  done
}

# meter DONE TOTAL: copies stdin to stdout, logging progress every few seconds while the bytes flow.
meter() {
  local fifo rc=0
  fifo=$(mktemp -u "$work/meter.XXXXXX")
  mkfifo "$fifo"
  report_dd "$1" "$2" <"$fifo" &
  LC_ALL=C dd bs=1M status=progress 2>"$fifo" || rc=$?
  wait "$!"
  rm -f "$fifo"
  return "$rc"
}
# --- end of transfer helpers -------------------------------------------------------------------------
