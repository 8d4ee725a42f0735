#!/usr/bin/env bash
# Campaign send throughput: `sendtime campaign send` for a synthetic audience against
# `sendtime serve` (embedded demo data of the same size), both release builds, on loopback.
# Prints the send summary: achieved rate vs target, latency percentiles, outcomes.
#   scripts/bench-campaign.sh [RECIPIENTS=100000] [RATE_PER_MIN=600000] [BLOCKS=recommendations]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-100000}"
RATE="${2:-600000}"
BLOCKS="${3:-recommendations}"
cd "$ROOT"
cargo build --release --bin sendtime >&2
BIN="$ROOT/target/release/sendtime"
WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN" serve --addr 127.0.0.1:0 --users "$N" --items 2000 >"$WORK/serve.out" 2>/dev/null &
SERVER=$!
for _ in $(seq 1 300); do grep -q "listening" "$WORK/serve.out" 2>/dev/null && break; sleep 0.2; done
URL="$(sed -n 's/^sendtime listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")"
echo "server: $URL ($N users); send: $N recipients × [$BLOCKS] at $RATE msgs/min" >&2
"$BIN" campaign send --base-url "$URL" --synthetic "$N" --blocks "$BLOCKS" --rate "$RATE" \
  --out "$WORK/results.jsonl" --summary "$WORK/summary.json" --max-concurrency 512
python3 - "$WORK/summary.json" "$WORK/results.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lines = sum(1 for _ in open(sys.argv[2]))
print(f"| recipients | target rps | achieved rps | achieved ÷ target | p50 ms | p95 ms | p99 ms | ok | other | result lines |")
print(f"|---|---|---|---|---|---|---|---|---|---|")
other = sum(v for k, v in s["outcomes"].items() if k != "ok")
print(f"| {s['recipients']:,} | {s['target_requests_per_second']:,.0f} | {s['requests_per_second']:,.0f} | {s['requests_per_second']/s['target_requests_per_second']:.2f} | "
      f"{s['latency_ms_p50']:.2f} | {s['latency_ms_p95']:.2f} | {s['latency_ms_p99']:.2f} | {s['outcomes'].get('ok',0):,} | {other} | {lines:,} |")
PY
