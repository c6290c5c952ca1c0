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

if [[ ! -x "$ROOT/venv/bin/moto_server" ]]; then
    log "installing moto[server] into $ROOT/venv"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    fi
    rm -rf "$ROOT/venv"
    mkdir -p "$ROOT"
    python3 -m venv "$ROOT/venv" >&2
    "$ROOT/venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6' >&2
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
