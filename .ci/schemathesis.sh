#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI, in a venv under /opt/toygres) against the running
# server's /api/openapi.json. Builds `toygres`, starts it on loopback with a random token on a
# fresh data directory, runs a bounded number of examples per operation (.ci/schemathesis.toml),
# then stops the server and every PostgreSQL instance the examples created. Fails on any failure.
#   bash .ci/schemathesis.sh                  install (if needed), then run
#   bash .ci/schemathesis.sh --install-only   install (or reinstall at the pinned version), no run
# With TOYGRES_SCHEMATHESIS_OUT=<file>, schemathesis' own output (its summary included) is also
# written to that file; .ci/run reads the test-case counts from it.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "schemathesis.sh: $*" >&2; }
VENV="${TOYGRES_SCHEMATHESIS_VENV:-/opt/toygres/schemathesis}"
# Pinned exactly: a tool that moves can change test results silently; bump it on purpose.
VERSION=4.32.5

installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null
}
install() {
    local have
    have="$(installed_version || true)"
    [[ -x "$VENV/bin/schemathesis" && "$have" == "$VERSION" ]] && return 0
    log "installing schemathesis==$VERSION into $VENV (found: ${have:-nothing})"
    python3 -m venv --help >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    # Only ever remove a venv (never whatever else TOYGRES_SCHEMATHESIS_VENV might name).
    [[ -f "$VENV/pyvenv.cfg" ]] && rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" >&2
    have="$(installed_version || true)"
    [[ "$have" == "$VERSION" ]] || { log "installed schemathesis ${have:-nothing}, not $VERSION"; exit 1; }
}

case "${1:-}" in
    --install-only) install; exit 0 ;;
    "") install ;;
    *) log "unknown argument: $1 (usage: $0 [--install-only])"; exit 2 ;;
esac

cargo build -p toygres-server --features postgres --bin toygres --locked
BIN="${CARGO_TARGET_DIR:-target}/debug/toygres"
WORK="$(mktemp -d /tmp/toygres-schemathesis.XXXXXX)"
chmod 711 "$WORK"
TOYGRES_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TOYGRES_TOKEN
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/server.log" &
SERVER=$!
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    if kill "$SERVER" 2>/dev/null; then wait "$SERVER" 2>/dev/null || true; fi
    local pgbin
    # shellcheck disable=SC2012  # Debian's directories, plain names
    pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    local owner user
    # Each instance's server runs as an OS user of its own (toygres-local's identity module).
    for data in "$WORK"/data/local/instances/*/pg/data; do
        if [[ -f "$data/postmaster.pid" ]]; then
            owner="$(stat -c %U "$data")"
            runuser -u "$owner" -- "$pgbin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
        fi
    done
    for config in "$WORK"/data/local/instances/*/config.json; do
        user="$(jq -r '.os_user.name // empty' "$config" 2>/dev/null || true)"
        if [[ -n "$user" ]]; then userdel "$user" >/dev/null 2>&1 || true; fi
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
run_schemathesis() {
    (cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/.ci/schemathesis.toml" run "$URL/api/openapi.json" --url "$URL")
}
if [[ -n "${TOYGRES_SCHEMATHESIS_OUT:-}" ]]; then
    # pipefail: the status is schemathesis' (or tee's, should the copy fail).
    run_schemathesis 2>&1 | tee "$TOYGRES_SCHEMATHESIS_OUT" || status=$?
else
    run_schemathesis || status=$?
fi
if [[ $status -ne 0 ]]; then
    log "failures above; the server's log tail:"
    tail -n 40 "$WORK/server.log" >&2
fi
if grep -qF -f <(printf '%s\n' "$TOYGRES_TOKEN") "$WORK/server.log"; then
    log "the token reached the server's log"
    status=1
fi
exit $status
