# The in-cluster connection test (probe-job.yaml): `SELECT 1` over TLS with the password of the
# mounted Secret, through a pgpass file only this user can read (`:` and `\` escaped as libpq
# wants). psql's error, if any, is the Job's log.
set -euo pipefail
umask 077
password_file=${TOYGRES_PROBE_PASSWORD_FILE:-/etc/toygres-probe/password}
PGPASSFILE=$(mktemp)
export PGPASSFILE
trap 'rm -f "$PGPASSFILE"' EXIT
printf '*:*:*:*:%s\n' "$(sed -e 's/[\\:]/\\&/g' "$password_file")" >"$PGPASSFILE"
psql -X -w -q -At -c 'SELECT 1' >/dev/null
echo "probe: connected to $PGHOST:$PGPORT as $PGUSER over TLS; SELECT 1 answered"
