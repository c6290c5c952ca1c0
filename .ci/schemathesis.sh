#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI, in a venv under /opt/toygres) against the running
# server's /api/openapi.json. Builds `toygres`, starts it on loopback with a random token on a
# fresh data directory, runs a bounded number of examples per operation (.ci/schemathesis.toml),
# then stops the server and every PostgreSQL instance the examples created. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "schemathesis.sh: $*" >&2; }
VENV="${TOYGRES_SCHEMATHESIS_VENV:-/opt/toygres/schemathesis}"
if [[ ! -x "$VENV/bin/schemathesis" ]]; then
    log "installing schemathesis into $VENV"
    python3 -m venv --help >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4.3,<5'
fi
cargo build -p toygres-server --bin toygres --locked
BIN="${CARGO_TARGET_DIR:-target}/debug/toygres"
WORK="$(mktemp -d /tmp/toygres-schemathesis.XXXXXX)"
chmod 711 "$WORK"
TOYGRES_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TOYGRES_TOKEN
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/server.log" &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
    local pgbin
    pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    for data in "$WORK"/data/local/instances/*/data; do
        [[ -f "$data/postmaster.pid" ]] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/out" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
URL="$(sed -n 's/^toygres listening on //p' "$WORK/out")"
log "server at $URL"
status=0
# From the work directory, so that schemathesis' cache (.schemathesis/) goes away with it.
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/.ci/schemathesis.toml" run "$URL/api/openapi.json" --url "$URL") || status=$?
if [[ $status -ne 0 ]]; then
    log "failures above; the server's log tail:"
    tail -n 40 "$WORK/server.log" >&2
fi
if grep -qF -f <(printf '%s\n' "$TOYGRES_TOKEN") "$WORK/server.log"; then
    log "the token reached the server's log"
    status=1
fi
exit $status
