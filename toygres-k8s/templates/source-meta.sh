# --- source helpers (the backup job's `dump` container, after common.sh) ------------------------
# psql_q ARG...: psql on the source's database `postgres`, quiet, unaligned, stopping at an error.
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

# source_meta DIR FORMAT PROGRAM ESTIMATE_SQL: what both formats record about the source in DIR:
#   format        FORMAT (logical or physical)
#   pg_version    the server's version (a JSON string)
#   dump_version  the version of PROGRAM, which writes the image's bytes (a JSON string)
#   locale.json   the cluster's default locale
#   raw_estimate  bytes the image's streams will hold before compression, by ESTIMATE_SQL (the
#                 total of the byte progress)
source_meta() {
  printf '%s' "$2" >"$1/format"
  psql_q -c "SELECT to_json(split_part(current_setting('server_version'), ' ', 1))" >"$1/pg_version"
  "$3" --version | sed -E 's/^[^(]*\(PostgreSQL\) ([0-9][^ ]*).*/"\1"/' >"$1/dump_version"
  log "source server version $(cat "$1/pg_version"), $3 $(cat "$1/dump_version")"
  # toygres_core::manifest::ClusterLocale::QUERY, mapped as from_row does.
  psql_q <<'SQL' >"$1/locale.json"
SELECT json_build_object('encoding', e, 'lc_collate', c, 'lc_ctype', t,
  'provider', CASE p WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' ELSE 'libc' END,
  'locale', CASE WHEN p IN ('i', 'b') THEN l END)
FROM (SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, to_jsonb(d)->>'datlocprovider', coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale') FROM pg_database d WHERE d.datname = 'template1') q(e, c, t, p, l)
SQL
  psql_q -c "$4" >"$1/raw_estimate"
}
# --- end of source helpers ---------------------------------------------------------------------------
