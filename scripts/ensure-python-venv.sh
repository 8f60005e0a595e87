#!/usr/bin/env bash
# Debian ships `venv` separately: install python3-venv (as root) and retry.
set -euo pipefail
python="$1"; venv="$2"
rm -rf "$venv"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv python3-pip >/dev/null
"$python" -m venv "$venv"
