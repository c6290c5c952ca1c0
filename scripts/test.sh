#!/usr/bin/env bash
# Runs every test of the workspace: installs PostgreSQL (and the Azure emulator + azcopy) if missing,
# starts the emulator, then `cargo test --workspace`. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Azurite (Azure Blob emulator) and the real azcopy for the toygres-azure tests.
eval "$(bash .ci/azure.sh)"
cargo test --workspace --locked "$@"
