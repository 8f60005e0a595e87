#!/usr/bin/env bash
# Debian's chromium for the ops console's browser tests (Playwright drives it through
# executable_path; no browser is downloaded). Installed with apt-get when missing and
# we are root (or have sudo). Idempotent and quick when it is there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then exit 0; fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
echo "installing chromium"
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
