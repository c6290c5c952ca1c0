#!/usr/bin/env bash
# Installs what toygres needs on a fresh Debian machine: PostgreSQL's server and client binaries
# and zstd. Idempotent and quiet when everything is already there. Run as root (or with sudo).
set -euo pipefail
# Debian's PostgreSQL is deliberately NOT pinned (unlike the tools under .ci/): its security updates
# must reach users, and a fresh machine gets the newest Debian minor. The tests name any difference
# between minors they tolerate; `.ci/run` prints the version it got. Installed only when missing.

need=()
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v pgbench >/dev/null 2>&1 || need+=(postgresql-contrib)

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The server binaries refuse to run as root; toygres runs them as this OS user.
id postgres >/dev/null 2>&1 || { echo "setup: the postgres OS user is missing (reinstall postgresql)" >&2; exit 1; }
echo "setup: PostgreSQL $(pg_dump --version | awk '{print $3}') ready"
