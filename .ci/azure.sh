#!/usr/bin/env bash
# Installs and starts what the Azure tests need, idempotently, on a fresh Debian machine (as root):
#   - the Azure Storage emulator Azurite (npm `azurite`), started in the background on 127.0.0.1:10000;
#   - the real azcopy (npm `@azure-tools/azcopy-linux`, needs Debian's libsecret-1-0).
# Prints the variables the tests read, as shell `export` lines, on stdout (everything else goes to
# stderr) and writes them to $TOYGRES_AZURE_TOOLS/env. Use:   eval "$(bash .ci/azure.sh)"
set -euo pipefail

TOOLS="${TOYGRES_AZURE_TOOLS:-${HOME:-/root}/.cache/toygres-azure}"
PORT="${TOYGRES_AZURITE_PORT:-10000}"
AZCOPY="$TOOLS/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64"
AZURITE="$TOOLS/node_modules/.bin/azurite-blob"
log() { echo "azure.sh: $*" >&2; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >&2 || { apt-get update -q >&2 && apt-get install -y -q "$@" >&2; }
}

if ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm"
    apt_install nodejs npm
fi
if ! ldconfig -p | grep -q 'libsecret-1\.so\.0'; then
    log "installing libsecret-1-0 (azcopy links it)"
    apt_install libsecret-1-0
fi

mkdir -p "$TOOLS"
if [[ ! -x "$AZURITE" || ! -f "$AZCOPY" ]]; then
    log "installing azurite and azcopy into $TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error \
        'azurite@^3.35.0' '@azure-tools/azcopy-linux@^10.32.2' >&2
fi
chmod +x "$AZCOPY"
"$AZCOPY" --version >&2

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
if answers; then
    log "something already listens on 127.0.0.1:$PORT; using it as Azurite"
else
    log "starting azurite-blob on 127.0.0.1:$PORT (log: $TOOLS/azurite.log)"
    (cd "$TOOLS" && exec nohup "$AZURITE" --blobHost 127.0.0.1 --blobPort "$PORT" --inMemoryPersistence \
        --skipApiVersionCheck --loose --disableTelemetry >"$TOOLS/azurite.log" 2>&1 </dev/null) &
    echo $! >"$TOOLS/azurite.pid"
    for _ in $(seq 1 100); do
        answers && break
        sleep 0.2
    done
    answers || { log "Azurite did not start:"; cat "$TOOLS/azurite.log" >&2; exit 1; }
fi

cat >"$TOOLS/env" <<VARS
export TOYGRES_AZURITE_URL=http://127.0.0.1:$PORT
export TOYGRES_AZCOPY=$AZCOPY
VARS
cat "$TOOLS/env"
