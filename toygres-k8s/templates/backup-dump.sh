# Backup job, container `dump` (the source instance's PostgreSQL image, so pg_dump is of the
# source's major: a newer pg_dump writes archives an older pg_restore refuses). Dumps every database
# but template0 into FIFOs the `upload` container reads (see common.sh):
#   meta/            source_meta's files (source-meta.sh), databases.tsv, NNNN.create/.properties
#   globals.sql.zst  pg_dumpall --globals-only
#   db-NNNN.dump.zst pg_dump -Fc -Z0
# A database that refuses connections (datallowconn=false) accepts them while it is dumped and
# refuses them again at exit, whatever happens.
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-dump
hex_decode() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")"; }

meta="$exchange/meta.tmp"
rm -rf "$meta"
mkdir -p "$meta"
source_meta "$meta" logical pg_dump \
  "SELECT sum(pg_database_size(oid))::bigint FROM pg_database WHERE datname <> 'template0'"
# One line per database: hex of the name (for PGDATABASE), name and owner as JSON strings built by
# PostgreSQL itself (no name can break the manifest), datallowconn, hex of the name quoted as %I.
psql_q -F $'\t' -c "SELECT encode(convert_to(datname, 'UTF8'), 'hex'), to_json(datname::text),
  to_json(pg_get_userbyid(datdba)::text), datallowconn, encode(convert_to(format('%I', datname), 'UTF8'), 'hex')
  FROM pg_database WHERE datname <> 'template0' ORDER BY datname" >"$meta/databases.tsv"

# set_allow_connections NAME true|false
set_allow_connections() {
  printf 'ALTER DATABASE :"db" ALLOW_CONNECTIONS %s;\n' "$2" | psql -X -q -v ON_ERROR_STOP=1 -d postgres -v db="$1"
}
while IFS=$'\t' read -r -u 3 name_hex _ _ allow _; do
  if [[ "$allow" == f ]]; then
    name=$(hex_decode "$name_hex")
    set_allow_connections "$name" true
    exit_steps+=("set_allow_connections $(printf '%q' "$name") false")
  fi
done 3<"$meta/databases.tsv"

index=0
while IFS=$'\t' read -r -u 3 name_hex _ _ allow quoted_hex; do
  meta_name=$(printf '%04d' "$index")
  PGDATABASE=$(hex_decode "$name_hex") pg_dump --create --schema-only --exclude-schema='*' |
    split_database_sql "$meta/$meta_name.create" "$meta/$meta_name.properties"
  if [[ "$allow" == f ]]; then
    printf 'ALTER DATABASE %s ALLOW_CONNECTIONS false;\n' "$(hex_decode "$quoted_hex")" >>"$meta/$meta_name.properties"
  fi
  index=$((index + 1))
done 3<"$meta/databases.tsv"
rm -rf "$exchange/meta"
mv "$meta" "$exchange/meta"

log "dumping roles and tablespaces"
send globals.sql.zst pg_dumpall --globals-only -l postgres
index=0
while IFS=$'\t' read -r -u 3 name_hex name_json _ _ _; do
  object=$(printf 'db-%04d.dump.zst' "$index")
  log "dumping database $name_json into $object"
  PGDATABASE=$(hex_decode "$name_hex") send "$object" pg_dump -Fc -Z0
  index=$((index + 1))
done 3<"$exchange/meta/databases.tsv"
log "dumped $index database(s)"
