# Restore job, init container `fetch`: downloads the image into TOYGRES_STAGING on the new volume and
# verifies it before anything is loaded: the manifest against TOYGRES_IMAGE_CHECKSUM (from the
# catalog), then every object against the manifest's sha256 and size. Objects are stored decompressed
# (seekable custom-format dumps, so the load can run pg_restore in parallel).
# Writes TOYGRES_STAGING/databases.sh (shell-quoted names, owners and files) for the load container.
# Needs jq, zstd, sha256sum and the transfer program.
TOYGRES_STEP=restore-fetch
: "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_IMAGE_CHECKSUM:?missing}" "${TOYGRES_STAGING:?missing}" "${TOYGRES_MARKER:?missing}"

if [[ -f "$TOYGRES_MARKER" && "$(cat "$TOYGRES_MARKER")" == "$TOYGRES_IMAGE_ID" ]]; then
  log "volume already holds image $TOYGRES_IMAGE_ID; nothing to fetch"
  exit 0
fi
rm -rf "$TOYGRES_STAGING"
mkdir -p "$TOYGRES_STAGING"
transfer_login

manifest="$TOYGRES_STAGING/manifest.json"
download manifest.json >"$manifest"
actual="sha256:$(sha256sum <"$manifest" | cut -d' ' -f1)"
[[ "$actual" == "$TOYGRES_IMAGE_CHECKSUM" ]] ||
  fail "image $TOYGRES_IMAGE_ID is corrupted: manifest.json has checksum $actual, expected $TOYGRES_IMAGE_CHECKSUM; restore from another image"
jq -e --arg id "$TOYGRES_IMAGE_ID" '.image_id == $id and .format_version <= 1 and .compression == "zstd"' \
  "$manifest" >/dev/null || fail "manifest.json does not describe image $TOYGRES_IMAGE_ID in format 1 with zstd"

count=0
while IFS=$'\t' read -r -u 3 name sha256 size; do
  [[ "$name" =~ ^(globals\.sql|db-[0-9]{4}\.dump)\.zst$ ]] || fail "unexpected object name in the manifest"
  log "downloading $name ($size bytes)"
  download "$name" | hash_stream "$work/$name" | zstd -q -d >"$TOYGRES_STAGING/${name%.zst}"
  [[ "sha256:$(cat "$work/$name.sha256")" == "$sha256" ]] ||
    fail "image $TOYGRES_IMAGE_ID is corrupted: $name has checksum sha256:$(cat "$work/$name.sha256"), expected $sha256"
  [[ "$(cat "$work/$name.size")" == "$size" ]] ||
    fail "image $TOYGRES_IMAGE_ID is incomplete: $name has $(cat "$work/$name.size") bytes, the manifest says $size"
  count=$((count + 1))
done 3< <(jq -r '(.globals, .databases[].object) | [.name, .sha256, (.size | tostring)] | @tsv' "$manifest")

jq -r '.databases[] | "db_names+=(\(.name | @sh)); db_owners+=(\(.owner | @sh)); db_files+=(\(.object.name | rtrimstr(".zst") | @sh))"' \
  "$manifest" >"$TOYGRES_STAGING/databases.sh.tmp"
mv "$TOYGRES_STAGING/databases.sh.tmp" "$TOYGRES_STAGING/databases.sh"
log "fetched and verified $count object(s) of image $TOYGRES_IMAGE_ID"
