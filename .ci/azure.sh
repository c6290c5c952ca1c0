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

# Pinned exactly: a tool that moves can change test results silently; bump them on purpose.
AZURITE_VERSION=3.37.0
AZCOPY_VERSION=10.32.2
# The version of an npm package installed under $TOOLS, or nothing.
installed_version() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
        "$TOOLS/node_modules/$1/package.json" 2>/dev/null
}
# The Azurite this script started earlier from $TOOLS, if it still runs (its pid file, checked
# against the process' command line so that a reused pid is left alone).
our_azurite() {
    local pid
    pid="$(cat "$TOOLS/azurite.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$AZURITE" && echo "$pid"
}

mkdir -p "$TOOLS"
HAVE_AZURITE="$(installed_version azurite || true)"
HAVE_AZCOPY="$(installed_version @azure-tools/azcopy-linux || true)"
if [[ ! -x "$AZURITE" || ! -f "$AZCOPY" || "$HAVE_AZURITE" != "$AZURITE_VERSION" || "$HAVE_AZCOPY" != "$AZCOPY_VERSION" ]]; then
    log "installing azurite@$AZURITE_VERSION and azcopy@$AZCOPY_VERSION into $TOOLS" \
        "(found: azurite ${HAVE_AZURITE:-nothing}, azcopy ${HAVE_AZCOPY:-nothing})"
    if OLD="$(our_azurite)"; then
        log "stopping the Azurite of the previous install (pid $OLD)"
        kill "$OLD" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$OLD" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$TOOLS/node_modules" "$TOOLS/package.json" "$TOOLS/package-lock.json"
    npm install --prefix "$TOOLS" --save-exact --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" "@azure-tools/azcopy-linux@$AZCOPY_VERSION" >&2
    HAVE_AZURITE="$(installed_version azurite || true)"
    HAVE_AZCOPY="$(installed_version @azure-tools/azcopy-linux || true)"
    if [[ "$HAVE_AZURITE" != "$AZURITE_VERSION" || "$HAVE_AZCOPY" != "$AZCOPY_VERSION" ]]; then
        log "installed azurite ${HAVE_AZURITE:-nothing} and azcopy ${HAVE_AZCOPY:-nothing}, not the pinned versions"
        exit 1
    fi
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
