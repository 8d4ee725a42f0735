#!/usr/bin/env bash
# A screenshot of the preview page (every block for one user as each channel renders it), in
# headless Chromium, for the README: docs/preview.png. Usage: scripts/preview-screenshot.sh
# [USER_ID] [OUT.png]. Serves the demo data (the same as `sendtime serve`) pinned to a date.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
USER_ID="${1:-u000001}"
OUT="${2:-$ROOT/docs/preview.png}"
cd "$ROOT"
cargo build --quiet --bin sendtime
LOG="$(mktemp)"
target/debug/sendtime serve --addr 127.0.0.1:0 --now 2026-11-22T00:00:00Z >"$LOG" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
BASE="$(sed -n 's/^sendtime listening on \([^ ]*\).*/\1/p' "$LOG")"
# Item images live on a CDN this closed network cannot reach: leave them out of the picture.
scripts/chromium.sh --hide-scrollbars --window-size=1280,2600 --blink-settings=imagesEnabled=false \
  --screenshot="$OUT" "$BASE/preview?user_id=$USER_ID"
echo "wrote $OUT ($BASE/preview?user_id=$USER_ID)"
