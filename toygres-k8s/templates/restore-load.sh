# Restore job, container `load` (the instance's PostgreSQL image): initialises PGDATA with the password
# from the instance's Secret, starts the server for the load only (socket only, fsync off: safe because
# the volume is new and a failed load starts over), applies the globals, creates and restores every
# database, stops cleanly, removes the staging directory and writes the marker file.
set -euo pipefail
umask 077
TOYGRES_STEP=restore-load
log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$TOYGRES_STEP" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
: "${PGDATA:?missing}" "${TOYGRES_PASSWORD:?missing}" "${TOYGRES_IMAGE_ID:?missing}" "${TOYGRES_STAGING:?missing}"
: "${TOYGRES_MARKER:?missing}" "${TOYGRES_CONFIG_DIR:?missing}"

if [[ -f "$TOYGRES_MARKER" && "$(cat "$TOYGRES_MARKER")" == "$TOYGRES_IMAGE_ID" ]]; then
  log "volume already holds image $TOYGRES_IMAGE_ID"
  exit 0
fi
[[ -f "$TOYGRES_STAGING/databases.sh" ]] || fail "the fetch step left no verified image in $TOYGRES_STAGING"
db_names=() db_owners=() db_files=()
# shellcheck source=/dev/null
source "$TOYGRES_STAGING/databases.sh"

rm -rf "$PGDATA"
pwfile="$TOYGRES_STAGING/.pwfile"
printf '%s\n' "$TOYGRES_PASSWORD" >"$pwfile"
unset TOYGRES_PASSWORD
log "initialising $PGDATA"
initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
rm -f "$pwfile"
printf "include_if_exists = '%s/postgresql.conf'\n" "$TOYGRES_CONFIG_DIR" >>"$PGDATA/postgresql.conf"

socket=$(mktemp -d)
pg_ctl -D "$PGDATA" -w -t 600 -l "$socket/server.log" -o "-c listen_addresses='' -c unix_socket_directories=$socket \
  -c fsync=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c synchronous_commit=off \
  -c autovacuum=off -c maintenance_work_mem=512MB" start >/dev/null || { cat "$socket/server.log" >&2; exit 1; }
export PGHOST="$socket" PGUSER=postgres
psql_do() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

log "applying roles and tablespaces"
# The bootstrap superuser exists already; its ALTER ROLE (source password hash) still applies.
grep -vxF 'CREATE ROLE postgres;' "$TOYGRES_STAGING/globals.sql" | psql_do >/dev/null

# dbname_conninfo NAME: a conninfo naming database NAME, so no name is read as a connection string.
dbname_conninfo() { local v=${1//\\/\\\\}; v=${v//\'/\\\'}; printf "dbname='%s'" "$v"; }

for i in "${!db_names[@]}"; do
  name=${db_names[$i]} owner=${db_owners[$i]}
  log "restoring database $i of ${#db_names[@]}"
  if [[ "$name" == postgres ]]; then
    printf 'ALTER DATABASE postgres OWNER TO :"owner";\n' | psql_do -v owner="$owner"
  else
    printf 'CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;\n' | psql_do -v db="$name" -v owner="$owner"
  fi
  pg_restore -j 2 --exit-on-error -d "$(dbname_conninfo "$name")" "$TOYGRES_STAGING/${db_files[$i]}"
done

pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
# The server refuses a group-writable data directory (fsGroup gives the volume g+rwx): 0700 now,
# and fsGroupChangePolicy OnRootMismatch keeps the kubelet from changing it at each start.
chmod 0700 "$PGDATA"
sync
rm -rf "$TOYGRES_STAGING"
printf '%s' "$TOYGRES_IMAGE_ID" >"$TOYGRES_MARKER"
sync
log "image $TOYGRES_IMAGE_ID restored: ${#db_names[@]} database(s)"
