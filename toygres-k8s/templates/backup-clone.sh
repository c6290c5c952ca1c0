# Backup job of a clone image, container `dump` (the source instance's PostgreSQL image). The
# image's data is a CSI VolumeSnapshot of the source's PVC, which the executor takes once this Job
# has completed (toygres_k8s::clone); the job writes what the blob store keeps of it:
#   meta/            source_meta's files (source-meta.sh)
#   globals.sql.zst  pg_dumpall --globals-only (for inspection: the roles are in the data files)
# and then runs CHECKPOINT, so the snapshot taken next needs little WAL replayed when a clone
# starts (it is crash-consistent either way: data files and pg_wal are on the one volume).
# Needs: PGHOST/PGPORT/PGUSER/PGPASSWORD (from a Secret), TOYGRES_EXCHANGE.
TOYGRES_STEP=backup-clone

tablespaces=$(psql_q -c "SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')")
((tablespaces == 0)) ||
  fail "the source has $tablespaces tablespace(s) besides pg_default and pg_global, whose files a snapshot of its volume may not hold: take a logical image"

meta="$exchange/meta.tmp"
rm -rf "$meta"
mkdir -p "$meta"
source_meta "$meta" clone pg_dumpall "SELECT 0"
rm -rf "$exchange/meta"
mv "$meta" "$exchange/meta"

log "dumping roles and tablespaces"
send globals.sql.zst pg_dumpall --globals-only -l postgres
log "checkpoint before the volume snapshot"
psql_q -c CHECKPOINT
log "checkpoint done; the executor snapshots the source's volume next"
