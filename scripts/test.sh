#!/usr/bin/env bash
# Runs every test of the workspace: installs PostgreSQL (and the Azure emulator + azcopy) if missing,
# starts the emulator, then `cargo test --workspace`. Idempotent; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked "$@"
