#!/usr/bin/env bash
# Tools the Kubernetes job-script tests run for real (toygres-k8s/tests): jq (the toolbox's JSON tool)
# besides zstd, which scripts/setup.sh installs. Idempotent; run as root (or with sudo).
set -euo pipefail
if ! command -v jq >/dev/null 2>&1; then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq jq >/dev/null
fi
