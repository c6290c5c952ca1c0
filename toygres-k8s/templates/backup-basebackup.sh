# Backup job of a physical image, container `dump` (the source instance's PostgreSQL image, so
# pg_basebackup is of the source's major). Over a replication connection (the instances'
# pg_hba.conf allows one for the superuser: toygres_k8s::manifests::PG_HBA_CONF) it streams into
# the FIFOs the `upload` container reads (see common.sh):
#   meta/            source_meta's files (source-meta.sh)
#   globals.sql.zst  pg_dumpall --globals-only (for inspection: the roles are in the data files)
#   base-00.tar.zst  pg_basebackup -Ft -X fetch: the data directory and the WAL written while it
#                    was copied, one tar, never staged on disk
# The WAL the backup needs is kept by a temporary physical replication slot (hold_wal below): -X
# fetch reads it from the source's pg_wal at the very end, and without a slot a busy source recycles
# it first ("requested WAL segment ... has already been removed"). -X stream (whose temporary slot
# pg_basebackup makes itself) is refused in tar mode to stdout, and --slot needs -X stream.
# A source that cannot be imaged physically is refused with the reason before anything is sent.
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-basebackup

settings=$(psql_q -F $'\t' -c "SELECT current_setting('wal_level'), current_setting('max_wal_senders'),
  (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')),
  current_setting('max_replication_slots')")
IFS=$'\t' read -r wal_level wal_senders tablespaces slots <<<"$settings"
[[ "$wal_level" != minimal ]] ||
  fail "the source runs with wal_level=minimal, from which no physical image can be taken: set wal_level = replica on it and restart it, or take a logical image"
((wal_senders > 0)) ||
  fail "the source has max_wal_senders = 0, so it accepts no replication connection: raise it to at least 1 and restart it, or take a logical image"
((tablespaces == 0)) ||
  fail "the source has $tablespaces tablespace(s) besides pg_default and pg_global, which a physical image cannot hold (pg_basebackup streams one tablespace to a pipe): take a logical image"
((slots > 0)) ||
  fail "the source has max_replication_slots = 0, so no replication slot can keep the WAL the backup needs: raise it to at least 1 and restart it, or take a logical image"

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
    cause="the source's pg_hba.conf allows no replication connection for $PGUSER from this pod: instances deployed by this executor allow one (the line 'hostssl replication postgres 0.0.0.0/0 scram-sha-256' of toygres_k8s::manifests::PG_HBA_CONF); add it to the instance's ConfigMap and reload the server, or take a logical image"
  elif grep -qE 'WAL level not sufficient|wal_level' "$1"; then
    cause="the source runs with wal_level=minimal: set wal_level = replica on it and restart it, or take a logical image"
  elif grep -q 'max_wal_senders' "$1"; then
    cause="the source has no free WAL sender (max_wal_senders): raise max_wal_senders on it and restart it, or image it again later"
  elif grep -q 'has already been removed' "$1"; then
    cause="a WAL segment the backup needed was removed while it ran, although a replication slot held it: the source invalidated the slot (max_slot_wal_keep_size or idle_replication_slot_timeout) or the session holding it ended; raise those limits on the source and image it again"
  fi
  if [[ -n "$cause" ]]; then log "ERROR: $cause"; fi
}

# hold_wal: creates a temporary physical replication slot that reserves WAL at once, in a psql
# session of its own kept open until pg_basebackup has ended. The server keeps every WAL segment
# from the slot's position, which is before the backup's start checkpoint, whatever wal_keep_size
# and max_wal_size say; it drops a temporary slot when its session ends, so a killed pod or a lost
# connection leaks no slot (a permanent slot left behind would keep WAL on the source forever).
# TCP keepalives keep an idle session through load balancers that drop idle connections.
hold_wal() {
  local reply=""
  wal_slot="toygres_backup_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  coproc WAL_HOLD { exec psql -X -q -At -v ON_ERROR_STOP=1 -d "dbname=postgres keepalives_idle=30 keepalives_interval=10 keepalives_count=6" 2>&1; }
  # shellcheck disable=SC2153 # set by coproc
  wal_hold_pid=$WAL_HOLD_PID wal_hold_in=${WAL_HOLD[1]}
  exit_steps+=('release_wal')
  printf "SELECT pg_create_physical_replication_slot('%s', true, true) IS NOT NULL;\n" "$wal_slot" >&"$wal_hold_in"
  read -r -t 120 reply <&"${WAL_HOLD[0]}" || true
  [[ "$reply" == t ]] ||
    fail "could not create a temporary replication slot on the source to keep the WAL the backup needs: ${reply:-no answer within 120 s}"
  log "temporary replication slot $wal_slot keeps the source's WAL until the backup ends"
}

# release_wal: ends the session holding the slot (the server drops the slot with it).
release_wal() {
  if [[ -n "${wal_hold_pid:-}" ]]; then
    eval "exec $wal_hold_in>&-" 2>/dev/null || true
    wait "$wal_hold_pid" 2>/dev/null || true
    wal_hold_pid=""
  fi
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
hold_wal
log "streaming pg_basebackup of the data directory (replication connection to $PGHOST)"
send base-00.tar.zst basebackup
release_wal
log "base backup streamed"
