#!/usr/bin/env bash
# Runs Debian's Chromium headless the way this machine needs it (no sandbox as root, no
# background networking: the network is closed), with a fresh profile; extra arguments are
# Chromium's (e.g. --dump-dom URL, --screenshot=FILE URL). Installed by install-tools.sh.
set -euo pipefail
PROFILE="$(mktemp -d)"
trap 'rm -rf "$PROFILE"' EXIT
exec chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --user-data-dir="$PROFILE" "$@" 2>/dev/null
