#!/usr/bin/env bash
# Install Debian's Chromium for the JupyterLab browser test (Playwright drives it; no browser
# download at run time). Needs root and apt; exits non-zero when it cannot, and the test skips.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || { echo "not root: cannot apt-get install chromium" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || { echo "no apt-get: cannot install chromium" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
command -v chromium
