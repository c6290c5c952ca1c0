# Backup job, container `dump` (the source instance's PostgreSQL image, so pg_dump is of the
# source's major: a newer pg_dump writes archives an older pg_restore refuses). Dumps every database
# but template0 into FIFOs the `upload` container reads (see common.sh):
#   meta/            pg_version, dump_version, locale.json, databases.tsv, NNNN.create/.properties
#   globals.sql.zst  pg_dumpall --globals-only
#   db-NNNN.dump.zst pg_dump -Fc -Z0
# A database that refuses connections (datallowconn=false) accepts them while it is dumped and
# refuses them again at exit, whatever happens.
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-dump
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
hex_decode() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")"; }

meta="$exchange/meta.tmp"
rm -rf "$meta"
mkdir -p "$meta"
psql_q -c "SELECT to_json(split_part(current_setting('server_version'), ' ', 1))" >"$meta/pg_version"
pg_dump --version | sed -E 's/^pg_dump \(PostgreSQL\) ([0-9][^ ]*).*/"\1"/' >"$meta/dump_version"
log "source server version $(cat "$meta/pg_version"), pg_dump $(cat "$meta/dump_version")"
# The cluster's default locale: toygres_core::manifest::ClusterLocale::QUERY, mapped as from_row does.
psql_q <<'SQL' >"$meta/locale.json"
SELECT json_build_object('encoding', e, 'lc_collate', c, 'lc_ctype', t,
  'provider', CASE p WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' ELSE 'libc' END,
  'locale', CASE WHEN p IN ('i', 'b') THEN l END)
FROM (SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, to_jsonb(d)->>'datlocprovider', coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale') FROM pg_database d WHERE d.datname = 'template1') q(e, c, t, p, l)
SQL
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

# send NAME COMMAND...: runs COMMAND into NAME's FIFO once the upload side opened it.
send() {
  local name=$1 rc=0
  shift
  await "$exchange/$name.fifo"
  "$@" >"$exchange/$name.fifo" || rc=$?
  publish "$exchange/$name.done" "$rc"
  ((rc == 0)) || fail "$1 failed (exit $rc) writing $name"
}

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
