# Backup job: writes the toygres image format (toygres_core::manifest) with the transfer above:
#   globals.sql.zst   pg_dumpall --globals-only | zstd
#   db-NNNN.dump.zst  pg_dump -Fc -Z0 | zstd, one per non-template database
#   manifest.json     sha256 and size of every object, written last
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_IMAGE_ID, TOYGRES_IMAGE_TYPE.
TOYGRES_STEP=backup
: "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_IMAGE_TYPE:?missing}"

# store NAME: compresses stdin with zstd, uploads it as NAME, records its sha256 and size.
store() {
  zstd -q -3 -T0 | hash_stream "$work/$1" | upload "$1"
}

# object_json NAME: the manifest entry of a stored object.
object_json() {
  printf '{"name":"%s","size":%s,"sha256":"sha256:%s"}' "$1" "$(cat "$work/$1.size")" "$(cat "$work/$1.sha256")"
}

transfer_login
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
pg_version_json=$(psql_q -c "SELECT to_json(split_part(current_setting('server_version'), ' ', 1))")
log "source server version $pg_version_json"

log "dumping roles and tablespaces"
pg_dumpall --globals-only -l postgres | store globals.sql.zst

# One line per database: hex of the name (for PGDATABASE), then name and owner as JSON strings built
# by PostgreSQL itself, so no name can break the manifest.
psql_q -F $'\t' -c "SELECT encode(convert_to(datname, 'UTF8'), 'hex'), to_json(datname::text),
  to_json(pg_get_userbyid(datdba)::text) FROM pg_database WHERE NOT datistemplate ORDER BY datname" \
  >"$work/databases.tsv"

databases_json=""
index=0
while IFS=$'\t' read -r -u 3 name_hex name_json owner_json; do
  object=$(printf 'db-%04d.dump.zst' "$index")
  name=$(printf '%b' "$(sed 's/../\\x&/g' <<<"$name_hex")")
  log "dumping database $name_json into $object"
  PGDATABASE="$name" pg_dump -Fc -Z0 | store "$object"
  databases_json+="${databases_json:+,}{\"name\":$name_json,\"owner\":$owner_json,\"object\":$(object_json "$object")}"
  index=$((index + 1))
done 3<"$work/databases.tsv"

printf '{"format_version":1,"image_id":"%s","pg_version":%s,"image_type":"%s","compression":"zstd","globals":%s,"databases":[%s],"created_at":"%s"}\n' \
  "$TOYGRES_IMAGE_ID" "$pg_version_json" "$TOYGRES_IMAGE_TYPE" "$(object_json globals.sql.zst)" "$databases_json" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$work/manifest.json"
# azcopy reads only from a pipe, never from a redirected file.
cat "$work/manifest.json" | upload manifest.json
log "image $TOYGRES_IMAGE_ID complete: $index database(s), manifest sha256:$(sha256sum <"$work/manifest.json" | cut -d' ' -f1)"
