# Backup job, container `upload` (toolbox): compresses what the `dump` container writes into the
# FIFOs, seals it when the image is encrypted (seal.sh), uploads it with the transfer above and
# writes the toygres image format 2 (toygres_core::manifest): manifest.json, with the sha256, size
# and raw size of every object, last. Sizes and checksums are those of the stored (sealed) bytes;
# manifest.json is sealed too, and the catalog's checksum is that of its stored bytes.
# Logical images (backup-dump.sh) hold the globals and one dump per database, physical ones
# (backup-basebackup.sh) the globals and pg_basebackup's tar, clone images (backup-clone.sh) the
# globals and the name of their VolumeSnapshot. Progress counts the bytes the dump
# side writes, of the source's size estimate. The upload block size fits twice that estimate in a
# block blob's 50,000 blocks (transfer.sh, upload_args): no object of the image can be larger than
# the whole source (compressed, plus the WAL written during a physical backup), with room to spare.
# Needs: TOYGRES_IMAGE_ID, TOYGRES_IMAGE_TYPE, TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-upload
: "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_IMAGE_TYPE:?missing}"

raw_done=0
# store NAME: reads NAME's FIFO, compresses it, uploads it as NAME; records raw size, sha256, size.
store() {
  local rc
  rm -f "$exchange/$1.fifo"
  mkfifo "$exchange/$1.fifo"
  count_stream "$work/$1" <"$exchange/$1.fifo" | meter "$raw_done" "$estimate" | zstd -q -3 -T"${TOYGRES_THREADS:-0}" |
    seal_stream "$1" | hash_stream "$work/$1" | upload "$1" "$((estimate * 2))"
  await "$exchange/$1.done"
  rc=$(cat "$exchange/$1.done")
  [[ "$rc" == 0 ]] || fail "the dump of $1 failed (exit $rc); see the dump container's log"
  rm -f "$exchange/$1.fifo"
  raw_done=$((raw_done + $(cat "$work/$1.raw")))
  progress "$raw_done" "$((raw_done > estimate ? raw_done : estimate))"
}

# object_json NAME: the manifest entry of a stored object.
object_json() {
  jq -n --arg name "$1" --argjson size "$(cat "$work/$1.size")" --arg sha "sha256:$(cat "$work/$1.sha256")" \
    --argjson raw "$(cat "$work/$1.raw")" '{name: $name, size: $size, sha256: $sha, raw_size: $raw}'
}

# store_databases: every database's dump (logical images) into $databases.
store_databases() {
  local index=0 object entry
  while IFS=$'\t' read -r -u 3 _ name_json owner_json allow _; do
    object=$(printf 'db-%04d.dump.zst' "$index")
    store "$object"
    entry=$(jq -n --argjson name "$name_json" --argjson owner "$owner_json" --argjson object "$(object_json "$object")" \
      --rawfile create "$meta/$(printf '%04d' "$index").create" \
      --rawfile properties "$meta/$(printf '%04d' "$index").properties" --argjson allow "$([[ $allow == t ]] && echo true || echo false)" \
      '{name: $name, owner: $owner, object: $object, sql: {create: $create, properties: $properties}, allow_connections: $allow}')
    databases=$(jq -n --argjson all "$databases" --argjson one "$entry" '$all + [$one]')
    index=$((index + 1))
  done 3<"$meta/databases.tsv"
  contents="$index database(s)"
}

transfer_login
await "$exchange/meta/raw_estimate"
meta="$exchange/meta"
format=$(cat "$meta/format")
estimate=$(cat "$meta/raw_estimate")
databases="[]" archives="[]" clone=null
store globals.sql.zst
case "$format" in
  logical) store_databases ;;
  physical)
    store base-00.tar.zst
    archives="[$(object_json base-00.tar.zst)]"
    contents="1 archive"
    ;;
  clone)
    # The data is the VolumeSnapshot the executor takes once this Job has completed; its name and
    # the source volume's size come from the executor.
    : "${TOYGRES_CLONE_NAME:?missing}" "${TOYGRES_CLONE_SIZE:?missing}"
    clone=$(jq -n --arg name "$TOYGRES_CLONE_NAME" --argjson size "$TOYGRES_CLONE_SIZE" \
      '{kind: "volume-snapshot", name: $name, size: $size}')
    contents="the roles; the data is VolumeSnapshot $TOYGRES_CLONE_NAME"
    ;;
  *) fail "the dump container wrote an unknown format $format" ;;
esac

jq -n --arg id "$TOYGRES_IMAGE_ID" --argjson pg_version "$(cat "$meta/pg_version")" --arg type "$TOYGRES_IMAGE_TYPE" \
  --argjson globals "$(object_json globals.sql.zst)" --argjson databases "$databases" \
  --arg created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson locale "$(cat "$meta/locale.json")" \
  --argjson dump_version "$(cat "$meta/dump_version")" --arg format "$format" --argjson archives "$archives" \
  --argjson clone "$clone" \
  '{format_version: 2, image_id: $id, pg_version: $pg_version, image_type: $type, format: $format,
    compression: "zstd", globals: $globals, databases: $databases}
    + (if $archives == [] then {} else {archives: $archives} end)
    + {created_at: $created, cluster_locale: $locale, dump_version: $dump_version}
    + (if $clone == null then {} else {clone: $clone} end)' >"$work/manifest.json"
seal_stream manifest.json <"$work/manifest.json" >"$work/manifest.stored"
# azcopy reads only from a pipe, never from a redirected file.
cat "$work/manifest.stored" | upload manifest.json
# Complete: the total is what was written.
progress "$raw_done" "$raw_done"
sealed=unencrypted
if ((encrypted)); then sealed=encrypted; fi
log "image $TOYGRES_IMAGE_ID ($format, $sealed) complete: $contents, manifest sha256:$(sha256sum <"$work/manifest.stored" | cut -d' ' -f1)"
