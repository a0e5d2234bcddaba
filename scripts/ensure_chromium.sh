#!/usr/bin/env bash
# Browser tests drive Debian's Chromium; install it where it is missing (needs root, as on CI).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "Install Debian's chromium package (sudo apt-get install -y chromium)" >&2; exit 1; fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
