#!/usr/bin/env bash
# Installs and starts an S3-compatible server for the toygres-s3 tests, idempotently, on a fresh
# Debian machine (as root): PyPI `moto[server]` in a venv, started in the background on
# 127.0.0.1:5000 (`moto_server -H 127.0.0.1 -p 5000`, in-memory).
# Prints `export TOYGRES_S3_URL=http://127.0.0.1:<port>` on stdout (everything else on stderr). Use:
#   eval "$(bash .ci/moto.sh)"
set -euo pipefail
ROOT="${TOYGRES_MOTO_ROOT:-${HOME:-/root}/.cache/toygres-moto}"
PORT="${TOYGRES_MOTO_PORT:-5000}"
log() { echo "moto.sh: $*" >&2; }

# Pinned exactly: a tool that moves can change test results silently; bump it on purpose.
VERSION=5.2.5
installed_version() {
    "$ROOT/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null
}
# The server this script started earlier from $ROOT/venv, if it still runs (its pid file, checked
# against the process' command line so that a reused pid is left alone).
our_server() {
    local pid
    pid="$(cat "$ROOT/moto.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$ROOT/venv/bin/moto_server" \
        && echo "$pid"
}

HAVE="$(installed_version || true)"
if [[ ! -x "$ROOT/venv/bin/moto_server" || "$HAVE" != "$VERSION" ]]; then
    log "installing moto[server]==$VERSION into $ROOT/venv (found: ${HAVE:-nothing})"
    if OLD="$(our_server)"; then
        log "stopping the moto_server of the previous install (pid $OLD)"
        kill "$OLD" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$OLD" 2>/dev/null || break; sleep 0.1; done
    fi
    if ! python3 -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    fi
    rm -rf "$ROOT/venv"
    mkdir -p "$ROOT"
    python3 -m venv "$ROOT/venv" >&2
    "$ROOT/venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$VERSION" >&2
    HAVE="$(installed_version || true)"
    [[ "$HAVE" == "$VERSION" ]] || { log "installed moto ${HAVE:-nothing}, not $VERSION"; exit 1; }
fi

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
if answers; then
    log "something already listens on 127.0.0.1:$PORT; using it as the S3 server"
else
    log "starting moto_server on 127.0.0.1:$PORT (log: $ROOT/moto.log)"
    (exec nohup "$ROOT/venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$ROOT/moto.log" 2>&1 </dev/null) &
    echo $! >"$ROOT/moto.pid"
    for _ in $(seq 1 150); do
        answers && break
        sleep 0.2
    done
    answers || { log "moto_server did not start:"; cat "$ROOT/moto.log" >&2; exit 1; }
fi
echo "export TOYGRES_S3_URL=http://127.0.0.1:$PORT"
