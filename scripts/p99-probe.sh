#!/usr/bin/env bash
# A quick re-measurement of two figures of scripts/bench.sh for one block on the embedded
# store, pinned as bench.sh pins (server core 0, generator core 1), N times: p99 at 2,000
# calls/s over 30 s, and the server's CPU over those 60,000 calls scaled to 100,000 requests
# ("CPU / 100k requests"). USERS= sets the dataset's users (18,000 by default).
#   scripts/p99-probe.sh BLOCK [N] [extra serve flags]     # e.g. cart 3 --cache-answer-ttl-secs 0
# Needs a release build (cargo build --release --bin sendtime). BIN= picks another binary
# (an A/B against an older commit's build).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release/sendtime}"
BLOCK="${1:-cart}"; N="${2:-3}"; shift $(( $# < 2 ? $# : 2 )) || true
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" data generate --users "${USERS:-18000}" --items 2000 --seed 42 --as-of 2026-11-20T12:00:00Z \
  --out "$WORK/data.jsonl" 2>/dev/null
SENDTIME_LOG=info taskset -c 0 "$BIN" --log-format json serve --addr 127.0.0.1:0 \
  --data "$WORK/data.jsonl" --now 2026-11-20T12:00:00Z "$@" >"$WORK/serve.out" 2>"$WORK/serve.log" &
PID=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(sed -n 's/^sendtime listening on \(http[^ ]*\).*/\1/p' "$WORK/serve.out" | head -1)"
  [[ -n "$URL" ]] && break
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "p99-probe: serve did not start" >&2; exit 1; }
lt() { taskset -c 1 "$BIN" loadtest --base-url "$URL" --blocks "$1" --plan "$2" --out "$WORK/$3" >/dev/null 2>&1 || true; }
lt recommendations,cart,dormancy,onboarding "400/s for 5s" first
lt "$BLOCK" "2000/s for 5s" warm
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ="$(getconf CLK_TCK)"
for i in $(seq 1 "$N"); do
  before="$(ticks)"
  lt "$BLOCK" "2000/s for 30s" "run$i"
  cpu="$(awk -v b="$before" -v a="$(ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", (a - b) / hz * 100000 / 60000 }')"
  printf '%s run %d: %s, %s s CPU / 100k requests\n' "$BLOCK" "$i" \
    "$(grep -o 'p99 [0-9.]* ms' "$WORK/run$i/report.md" | head -1)" "$cpu"
done
