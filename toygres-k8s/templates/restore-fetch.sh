# Restore job, container `fetch` (toolbox): downloads the image and verifies it before anything is
# loaded (the stored manifest against TOYGRES_IMAGE_CHECKSUM from the catalog, opened and
# authenticated when the image is encrypted, then every object's stored bytes against the
# manifest's sha256 and size, without storing them), writes the load plan for the `load`
# container, then streams every object the load needs again, opened (only authenticated chunks pass:
# seal.sh) and decompressed, into the FIFO the load container reads, checking it again on the way:
# a logical image's globals and dumps, a physical image's tar archives (nothing is unpacked before
# every byte of the image was verified). A failure on the way fails this container, so the load
# never completes nor marks the volume. Nothing is staged on the volume: it holds only the
# restored data.
# Needs jq, zstd, sha256sum, the transfer program and, for an encrypted image, toygres-seal; reads
# the marker on the volume.
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
# Every object is verified; then the loaded ones are streamed: a physical image's archives (its
# roles are in the data files), a logical image's globals and dumps.
verified='(.globals, .databases[].object, (.archives // [])[])'
loaded='if .format == "physical" then .archives[] else (.globals, .databases[].object) end'
listing='[.name, .sha256, (.size | tostring)] | @tsv'
objects=$(jq -r "$verified | $listing" "$chosen")
streamed=$(jq -r "$loaded | $listing" "$chosen")
total=$(jq "[$verified | .size] | add" "$chosen")
grand=$(jq "[$verified, $loaded | .size] | add" "$chosen")
while IFS=$'\t' read -r name _ _; do
  [[ "$name" =~ ^(globals\.sql|db-[0-9]{4}\.dump|base-[0-9]{2}\.tar)\.zst$ ]] || fail "unexpected object name in the manifest"
done <<<"$objects"

# check NAME SHA256 SIZE: compares what hash_stream recorded for NAME with the manifest.
check() {
  [[ "$(cat "$work/$1.size")" == "$3" ]] ||
    fail "image $TOYGRES_IMAGE_ID is incomplete: $1 has $(cat "$work/$1.size") bytes, the manifest says $3"
  [[ "sha256:$(cat "$work/$1.sha256")" == "$2" ]] ||
    fail "image $TOYGRES_IMAGE_ID is corrupted: $1 has checksum sha256:$(cat "$work/$1.sha256"), expected $2"
}

done_bytes=0
while IFS=$'\t' read -r -u 3 name sha256 size; do
  log "verifying $name ($size bytes)"
  download "$name" | meter "$done_bytes" "$grand" | hash_stream "$work/$name" >/dev/null
  check "$name" "$sha256" "$size"
  done_bytes=$((done_bytes + size))
  progress "$done_bytes" "$grand"
done 3<<<"$objects"

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
log "image $TOYGRES_IMAGE_ID ($format) verified: $(wc -l <<<"$objects") object(s), $total bytes; streaming them to the load"

while IFS=$'\t' read -r -u 3 name sha256 size; do
  await "$exchange/$name.fifo"
  download "$name" | meter "$done_bytes" "$grand" | hash_stream "$work/$name" | open_stream "$name" |
    zstd -q -d >"$exchange/$name.fifo"
  check "$name" "$sha256" "$size"
  publish "$exchange/$name.done" 0
  done_bytes=$((done_bytes + size))
  progress "$done_bytes" "$grand"
done 3<<<"$streamed"
log "streamed every object of image $TOYGRES_IMAGE_ID"
