# Restore job, container `fetch` (toolbox): reads each object the load needs once. It checks the
# stored manifest against TOYGRES_IMAGE_CHECKSUM from the catalog (opened and authenticated when
# the image is encrypted), writes the load plan for the `load` container, then downloads each
# object the load needs exactly once (a logical image's globals and chosen databases' dumps, a
# physical image's tar archives; any other object is not read at all), hashing and counting its
# stored bytes while it streams them, opened and decompressed, into the FIFO the load reads. The
# check of size and sha256 comes at the end of each object, and only then is NAME.done "0": the load
# waits for it after each object and never marks the volume restored otherwise (common.sh
# `receive`). A mismatch fails this container, naming the object, and so the load fails too; a
# failed restore's volume is never deployed and is deleted.
# Loading bytes before their object's checksum is checked is safe only for bytes that were
# authenticated: an encrypted image's chunks pass the opener (seal.sh) only when authentic, so every
# byte the load sees was written by the backup of this image, and the load container holds no
# storage credentials anyway (workload identity skip-containers; the data key and any SAS are
# mounted into this container only). A plaintext image has no such check: SQL in a changed dump
# would run in the load's server as the container's user, and could forge the exchange's verdicts
# or the volume's marker, which a retried pod trusts. So a plaintext image is first read and
# verified whole, then streamed (two reads, as before encryption); bytes changed between the two
# reads are caught at the object's end, and its Job gets no retry (backoffLimit 0) that could
# trust a marker they wrote. Nothing is staged on the volume.
# Needs jq, zstd, sha256sum, GNU tee, the transfer program and, for an encrypted image, toygres-seal;
# reads the marker on the volume.
TOYGRES_STEP=restore-fetch
: "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_IMAGE_CHECKSUM:?missing}" "${TOYGRES_MARKER:?missing}"

exit_if_restored "nothing to fetch"
transfer_login

manifest="$work/manifest.json"
download manifest.json >"$work/manifest.stored"
actual="sha256:$(sha256sum <"$work/manifest.stored" | cut -d' ' -f1)"
[[ "$actual" == "$TOYGRES_IMAGE_CHECKSUM" ]] ||
  fail "image $TOYGRES_IMAGE_ID is corrupted: manifest.json has checksum $actual, expected $TOYGRES_IMAGE_CHECKSUM; restore from another image"
if ((encrypted)); then
  open_stream manifest.json <"$work/manifest.stored" >"$manifest" ||
    fail "image $TOYGRES_IMAGE_ID is not authentic: its manifest.json does not open under the image's data key (another key, or not written by toygres); restore from another image"
else
  [[ "$(head -c 6 "$work/manifest.stored")" != TGSEAL ]] ||
    fail "image $TOYGRES_IMAGE_ID is encrypted, but this job was given no data key: restore it through toygres with the image's key provider"
  mv "$work/manifest.stored" "$manifest"
fi
jq -e --arg id "$TOYGRES_IMAGE_ID" '.image_id == $id and .format_version >= 1 and .format_version <= 2 and
  .compression == "zstd" and ((.format // "logical") as $f | $f == "logical" or
    ($f == "physical" and (.archives // [] | length) > 0 and (.databases | length) == 0))' "$manifest" >/dev/null ||
  fail "manifest.json does not describe image $TOYGRES_IMAGE_ID as a logical or physical image in format 1 or 2 with zstd"
format=$(jq -r '.format // "logical"' "$manifest")
# TOYGRES_DATABASES (a JSON list, optional): restore only these databases; the globals always.
only=${TOYGRES_DATABASES:-null}
[[ "$format" == logical || "$only" == null ]] ||
  fail "image $TOYGRES_IMAGE_ID is physical: it restores as a whole data directory, not some of its databases; restore all of it, or take a logical image"
jq --argjson only "$only" '.databases |= map(select($only == null or (.name as $n | $only | index($n) != null)))' \
  "$manifest" >"$work/chosen.json"
[[ "$only" == null ]] || log "restoring only the databases $only"
chosen="$work/chosen.json"
# The objects the load reads: a physical image's archives (its roles are in the data files), a
# logical image's globals and chosen dumps. Nothing else is read.
loaded='if .format == "physical" then .archives[] else (.globals, .databases[].object) end'
streamed=$(jq -r "$loaded | [.name, .sha256, (.size | tostring)] | @tsv" "$chosen")
total=$(jq "[$loaded | .size] | add" "$chosen")
# Progress counts every byte this container reads: once, or twice for a plaintext image.
grand=$((encrypted ? total : 2 * total))
while IFS=$'\t' read -r name _ _; do
  [[ "$name" =~ ^(globals\.sql|db-[0-9]{4}\.dump|base-[0-9]{2}\.tar)\.zst$ ]] || fail "unexpected object name in the manifest"
done <<<"$streamed"

# mismatch NAME SHA256 SIZE: what differs between the manifest and what hash_stream recorded for
# NAME (nothing when it is exactly the manifest's object).
mismatch() {
  local size sum
  size=$(cat "$work/$1.size" 2>/dev/null || echo 0) sum=$(cat "$work/$1.sha256" 2>/dev/null || true)
  if [[ "$size" != "$3" ]]; then
    printf 'image %s is incomplete: %s has %s bytes, the manifest says %s' "$TOYGRES_IMAGE_ID" "$1" "$size" "$3"
  elif [[ "sha256:$sum" != "$2" ]]; then
    printf 'image %s is corrupted: %s has checksum sha256:%s, expected %s' "$TOYGRES_IMAGE_ID" "$1" "$sum" "$2"
  fi
}

# read_object NAME SHA256 SIZE OUT: downloads object NAME once, counting (meter) and hashing its
# stored bytes, opened (only authenticated chunks pass) and decompressed into OUT (skipped when
# OUT is empty); then checks it. Prints the problem, if any: a failed download, a mismatch (even
# when the opener or the load stopped early: tee -p hashes on to the object's end), or bytes that
# did not all reach OUT.
read_object() {
  local name=$1 out=$4 status=(0) problem
  if [[ -n "$out" ]]; then
    download "$name" | meter "$done_bytes" "$grand" | hash_stream "$work/$name" whole | open_stream "$name" |
      zstd -q -d >"$out" || status=("${PIPESTATUS[@]}")
  else
    download "$name" | meter "$done_bytes" "$grand" | hash_stream "$work/$name" >/dev/null || status=("${PIPESTATUS[@]}")
  fi
  if ((status[0] != 0)); then
    problem="could not download $name (exit ${status[0]}; see above)"
  else
    problem=$(mismatch "$name" "$2" "$3")
  fi
  if [[ -z "$problem" && "${status[*]}" =~ [1-9] ]]; then
    problem="$name was read and checks out, but did not all reach the load (exit statuses of its pipeline: ${status[*]})"
  fi
  printf '%s' "$problem"
}

done_bytes=0
if ((!encrypted)); then
  while IFS=$'\t' read -r -u 3 name sha256 size; do
    log "verifying $name ($size bytes) before anything is loaded (a plaintext image)"
    problem=$(read_object "$name" "$sha256" "$size" "")
    [[ -z "$problem" ]] || fail "$problem"
    done_bytes=$((done_bytes + size))
    progress "$done_bytes" "$grand"
  done 3<<<"$streamed"
fi

# The plan: shell-quoted values for the load container, which has no jq, and each database's SQL.
plan="$exchange/plan.tmp"
rm -rf "$plan"
mkdir -p "$plan"
jq -r '"format_version=\(.format_version)", "format=\(.format // "logical" | @sh)",
  "image_major=\(.pg_version | split(".")[0] | @sh)",
  "dump_major=\((.dump_version // .pg_version) | split(".")[0] | @sh)",
  "raw_total=\([(.globals, .databases[].object, (.archives // [])[]) | .raw_size // 0] | add)",
  "initdb_args=(\(if .cluster_locale then (.cluster_locale | ["--encoding=\(.encoding)", "--lc-collate=\(.lc_collate)",
      "--lc-ctype=\(.lc_ctype)"] + (if .provider != "libc" then ["--locale-provider=\(.provider)"] +
      (if .locale then ["--\(.provider)-locale=\(.locale)"] else [] end) else [] end)) else [] end | map(@sh) | join(" ")))",
  (.databases[] | "db_names+=(\(.name | @sh)); db_owners+=(\(.owner | @sh)); db_objects+=(\(.object.name | @sh))"),
  ((.archives // [])[] | "archives+=(\(.name | @sh))")' \
  "$chosen" >"$plan/plan.sh"
count=$(jq '.databases | length' "$chosen")
for ((i = 0; i < count; i++)); do
  jq -j --argjson i "$i" '.databases[$i].sql.create // ""' "$chosen" >"$plan/$i.create"
  jq -j --argjson i "$i" '.databases[$i].sql.properties // ""' "$chosen" >"$plan/$i.properties"
done
rm -rf "$exchange/plan"
mv "$plan" "$exchange/plan"
log "image $TOYGRES_IMAGE_ID ($format) manifest verified: streaming $(wc -l <<<"$streamed") object(s), $total bytes, to the load, each checked at its end"

while IFS=$'\t' read -r -u 3 name sha256 size; do
  await "$exchange/$name.fifo"
  problem=$(read_object "$name" "$sha256" "$size" "$exchange/$name.fifo")
  if [[ -n "$problem" ]]; then
    # The load waits for this verdict after the object's last byte and fails on it.
    publish "$exchange/$name.done" "$problem"
    fail "$problem"
  fi
  publish "$exchange/$name.done" 0
  done_bytes=$((done_bytes + size))
  progress "$done_bytes" "$grand"
done 3<<<"$streamed"
log "streamed and verified every object of image $TOYGRES_IMAGE_ID"
