# Restore job, container `load` (the instance's PostgreSQL image: its pg_restore reads archives of
# its major and older). Waits for the plan of the `fetch` container (from the manifest it checked),
# removes an earlier attempt's partial data directory, then checks the volume's free space; a physical image is
# unpacked (restore-unpack.sh); a logical one: checks the versions, initialises PGDATA (the source's
# locale, the password from the instance's Secret), starts the server for the load only (socket
# only, fsync off: safe because the volume is new and a failed load starts over), then streams in
# the globals and every database (format 2: its own CREATE DATABASE and, after its contents, its
# properties), gives the superuser its password back as SCRAM (the instance accepts scram-sha-256
# only) and warns of roles with MD5 hashes, stops cleanly and writes the marker.
# The image is read once: each object's bytes arrive as the `fetch` container downloads them (an
# encrypted image's authenticated bytes only), and `receive` (common.sh) fails unless `fetch` found
# the object's size and sha256 right after its last byte, so the marker is written only when every
# object checked out. This container holds no storage credentials (workload identity
# skip-containers), and a failed restore's volume is never deployed: it is deleted.
TOYGRES_STEP=restore-load
: "${PGDATA:?missing}" "${TOYGRES_PASSWORD:?missing}" "${TOYGRES_IMAGE_ID:?missing}"
: "${TOYGRES_MARKER:?missing}" "${TOYGRES_CONFIG_DIR:?missing}"

exit_if_restored
await "$exchange/plan/plan.sh"
plan="$exchange/plan"
format_version=1 format=logical image_major=0 dump_major=0 raw_total=0 initdb_args=() db_names=() db_owners=()
db_objects=() archives=()
# shellcheck source=/dev/null
source "$plan/plan.sh"

volume=$(dirname "$PGDATA")
# A retried job finds the partial data of the attempt before it (no marker: it never finished),
# which both restores remove anyway: removed first, so the space it holds counts as free.
if [[ -e "$PGDATA" ]]; then
  log "removing the partial data directory of an earlier attempt"
  rm -rf "$PGDATA"
fi
free=$(df -Pk "$volume" | awk 'NR == 2 { printf "%.0f", $4 * 1024 }')
((free >= raw_total)) ||
  fail "the volume has $free bytes free but the image holds $raw_total bytes uncompressed (the data needs at least that); raise K8sConfig::volume_size"

if [[ "$format" == physical ]]; then
  unpack_physical
  exit 0
fi
restore_version=$(pg_restore --version | sed -E 's/^pg_restore \(PostgreSQL\) ([0-9]+).*/\1/')
((restore_version >= dump_major)) ||
  fail "image $TOYGRES_IMAGE_ID was dumped by PostgreSQL $dump_major, newer than this image's pg_restore ($restore_version): restore it onto PostgreSQL $dump_major or later"

rm -rf "$PGDATA"
pwfile=$(mktemp)
printf '%s\n' "$TOYGRES_PASSWORD" >"$pwfile"
unset TOYGRES_PASSWORD
((${#initdb_args[@]} > 0)) || initdb_args=(-E UTF8)
log "initialising $PGDATA (${initdb_args[*]})"
initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" "${initdb_args[@]}" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
rm -f "$pwfile"
printf "include_if_exists = '%s/postgresql.conf'\n" "$TOYGRES_CONFIG_DIR" >>"$PGDATA/postgresql.conf"

socket=$(mktemp -d)
# ssl=off: the instance's configuration turns TLS on with a certificate only the server's pod mounts.
pg_ctl -D "$PGDATA" -w -t 600 -l "$socket/server.log" -o "-c listen_addresses='' -c unix_socket_directories=$socket -c ssl=off \
  -c fsync=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c synchronous_commit=off \
  -c autovacuum=off -c maintenance_work_mem=${TOYGRES_MAINTENANCE_WORK_MEM:-64MB}" start >/dev/null || { cat "$socket/server.log" >&2; exit 1; }
exit_steps+=('pg_ctl -D "$PGDATA" -m immediate stop >/dev/null 2>&1')
export PGHOST="$socket" PGUSER=postgres
psql_do() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

# The superuser's password as initdb stored it: the SCRAM verifier of the image's password (what
# a restore carries; --auth-host=scram-sha-256 makes initdb store SCRAM on every major).
scram=$(psql_do -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
[[ "$scram" == 'SCRAM-SHA-256$'* ]] ||
  fail "initdb did not store the superuser's password as a SCRAM-SHA-256 verifier, and the instance accepts scram-sha-256 only: use a PostgreSQL image whose initdb honours --auth-host=scram-sha-256 (PostgreSQL 10 or later)"

log "applying roles and tablespaces"
# The bootstrap superuser exists already; its ALTER ROLE (source password hash) still applies.
globals() { grep -vxF 'CREATE ROLE postgres;' | psql_do >/dev/null; }
receive globals.sql.zst globals
# The globals set the source's hash of the superuser's password. A SCRAM one stays (the instance
# equals its source); an MD5 one (an older source) could not log in: it becomes initdb's SCRAM
# verifier of the same password (a verifier, never the password, and on standard input: no
# process argument holds it).
if [[ "$(psql_do -At -c "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = 'postgres'")" != t ]]; then
  log "the source did not store the superuser's password as SCRAM: storing the image's password as SCRAM"
  printf "ALTER ROLE postgres PASSWORD '%s';\n" "$scram" | psql_do >/dev/null
fi
unset scram
md5_roles=$(psql_do -At -c "SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) FROM pg_authid
  WHERE rolcanlogin AND rolpassword LIKE 'md5%'")
[[ -z "$md5_roles" ]] ||
  log "WARNING: role(s) $md5_roles came with MD5 password hashes and cannot log in (the instance accepts scram-sha-256 only): the superuser must set each one's password again (ALTER ROLE ... PASSWORD), which stores it as SCRAM"

# dbname_conninfo NAME: a conninfo naming database NAME, so no name is read as a connection string.
dbname_conninfo() { local v=${1//\\/\\\\}; v=${v//\'/\\\'}; printf "dbname='%s'" "$v"; }

for i in "${!db_names[@]}"; do
  name=${db_names[$i]} owner=${db_owners[$i]}
  log "restoring database $((i + 1)) of ${#db_names[@]}"
  if ((format_version >= 2)); then
    # DatabaseSql::create, or create_for_existing for the databases a fresh cluster has.
    if [[ "$name" == postgres || "$name" == template1 ]]; then
      sed '/^CREATE DATABASE /d' "$plan/$i.create" | psql_do >/dev/null
    else
      psql_do -f "$plan/$i.create" >/dev/null
    fi
  elif [[ "$name" == postgres ]]; then
    printf 'ALTER DATABASE postgres OWNER TO :"owner";\n' | psql_do -v owner="$owner"
  else
    printf 'CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;\n' | psql_do -v db="$name" -v owner="$owner"
  fi
  receive "${db_objects[$i]}" pg_restore --single-transaction --exit-on-error -d "$(dbname_conninfo "$name")"
  if ((format_version >= 2)); then psql_do -f "$plan/$i.properties" >/dev/null; fi
done

pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
# The server refuses a group-writable data directory (fsGroup gives the volume g+rwx): 0700 now,
# and fsGroupChangePolicy OnRootMismatch keeps the kubelet from changing it at each start.
chmod 0700 "$PGDATA"
mark_restored "${#db_names[@]} database(s)"
