#!/usr/bin/env bash
# A quick re-measurement of bench.sh's "CPU / 100k requests" for one block on the embedded
# store: the server's utime+stime over 60,000 calls at 2,000/s (bench.sh's fixed pass),
# scaled to 100,000 requests, N times; pinned as bench.sh pins. Needs a release build; BIN=
# picks another binary (an A/B against an older commit's build, in the same minutes).
#   scripts/cpu-probe.sh BLOCK [N] [extra serve flags]   # e.g. recommendations 3 --cache-answer-ttl-secs 0
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/target/release/sendtime}"
BLOCK="${1:-recommendations}"; N="${2:-3}"; shift $(( $# < 2 ? $# : 2 )) || true
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" data generate --users 10000 --items 2000 --seed 42 --as-of 2026-11-20T12:00:00Z \
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
[[ -n "$URL" ]] || { echo "cpu-probe: serve did not start" >&2; exit 1; }
lt() { taskset -c 1 "$BIN" loadtest --base-url "$URL" --blocks "$1" --plan "$2" --out "$WORK/$3" >/dev/null 2>&1 || true; }
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ="$(getconf CLK_TCK)"
lt recommendations,cart,dormancy,onboarding "400/s for 5s" first
lt "$BLOCK" "2000/s for 5s" warm
for i in $(seq 1 "$N"); do
  before="$(ticks)"
  lt "$BLOCK" "2000/s for 30s" "run$i"
  after="$(ticks)"
  awk -v b="$before" -v a="$after" -v hz="$HZ" -v blk="$BLOCK" -v i="$i" \
    'BEGIN { printf "%s run %d: %.2f s CPU / 100k requests\n", blk, i, (a - b) / hz * 100000 / 60000 }'
done
