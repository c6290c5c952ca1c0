#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian's chromium + chromium-driver) for the web
# page's browser test, idempotently. Prints `export TOYGRES_CHROMIUM=… TOYGRES_CHROMEDRIVER=…` on
# stdout (everything else on stderr). Use:  eval "$(bash .ci/chromium.sh)"
set -euo pipefail
log() { echo "chromium.sh: $*" >&2; }
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    log "installing chromium and chromium-driver"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q --no-install-recommends chromium chromium-driver >&2 \
        || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q --no-install-recommends chromium chromium-driver >&2; }
fi
log "$(chromium --version 2>/dev/null | head -1)"
echo "export TOYGRES_CHROMIUM=$(command -v chromium) TOYGRES_CHROMEDRIVER=$(command -v chromedriver)"
