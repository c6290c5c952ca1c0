# Backup job of a physical image, container `dump` (the source instance's PostgreSQL image, so
# pg_basebackup is of the source's major). Over a replication connection (the instances'
# pg_hba.conf allows one for the superuser: toygres_k8s::manifests::PG_HBA_CONF) it streams into
# the FIFOs the `upload` container reads (see common.sh):
#   meta/            source_meta's files (source-meta.sh)
#   globals.sql.zst  pg_dumpall --globals-only (for inspection: the roles are in the data files)
#   base-00.tar.zst  pg_basebackup -Ft -X fetch: the data directory and the WAL written while it
#                    was copied, one tar, never staged on disk
# A source that cannot be imaged physically is refused with the reason before anything is sent.
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-basebackup

settings=$(psql_q -F $'\t' -c "SELECT current_setting('wal_level'), current_setting('max_wal_senders'),
  (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))")
IFS=$'\t' read -r wal_level wal_senders tablespaces <<<"$settings"
[[ "$wal_level" != minimal ]] ||
  fail "the source runs with wal_level=minimal, from which no physical image can be taken: set wal_level = replica on it and restart it, or take a logical image"
((wal_senders > 0)) ||
  fail "the source has max_wal_senders = 0, so it accepts no replication connection: raise it to at least 1 and restart it, or take a logical image"
((tablespaces == 0)) ||
  fail "the source has $tablespaces tablespace(s) besides pg_default and pg_global, which a physical image cannot hold (pg_basebackup streams one tablespace to a pipe): take a logical image"

meta="$exchange/meta.tmp"
rm -rf "$meta"
mkdir -p "$meta"
# What pg_basebackup copies: the databases, and at least one WAL segment (-X fetch).
source_meta "$meta" physical pg_basebackup \
  "SELECT (sum(pg_database_size(oid)) + pg_size_bytes(current_setting('wal_segment_size')))::bigint FROM pg_database"
rm -rf "$exchange/meta"
mv "$meta" "$exchange/meta"

# explain_basebackup LOG: the cause of a failed pg_basebackup, when its LOG (stderr) shows a known one.
explain_basebackup() {
  local cause=""
  if grep -q 'no pg_hba.conf entry for replication connection' "$1"; then
    cause="the source's pg_hba.conf allows no replication connection for $PGUSER from this pod: instances deployed by this executor allow one (the line 'host replication postgres 0.0.0.0/0 md5' of toygres_k8s::manifests::PG_HBA_CONF); add it to the instance's ConfigMap and reload the server, or take a logical image"
  elif grep -qE 'WAL level not sufficient|wal_level' "$1"; then
    cause="the source runs with wal_level=minimal: set wal_level = replica on it and restart it, or take a logical image"
  elif grep -q 'max_wal_senders' "$1"; then
    cause="the source has no free WAL sender (max_wal_senders): raise max_wal_senders on it and restart it, or image it again later"
  elif grep -q 'has already been removed' "$1"; then
    cause="a WAL segment the backup needed was recycled while it ran (-X fetch): raise wal_keep_size on the source and image it again"
  fi
  if [[ -n "$cause" ]]; then log "ERROR: $cause"; fi
}

# basebackup: pg_basebackup's tar on standard output.
basebackup() {
  local err rc=0
  err=$(mktemp)
  pg_basebackup -D - -Ft -X fetch -c fast --no-manifest 2>"$err" || rc=$?
  cat "$err" >&2
  if ((rc != 0)); then explain_basebackup "$err"; fi
  rm -f "$err"
  return "$rc"
}

log "dumping roles and tablespaces"
send globals.sql.zst pg_dumpall --globals-only -l postgres
log "streaming pg_basebackup of the data directory (replication connection to $PGHOST)"
send base-00.tar.zst basebackup
log "base backup streamed"
