#!/usr/bin/env bash
# Profiles `sendtime serve` (embedded store) under load with `perf`: where a benchmark target
# is missed, this says where the server's CPU goes.
#
#   scripts/profile.sh [BLOCK] [MODE] [SECONDS]
#
# BLOCK: recommendations (default), cart, dormancy, onboarding, or `baseline` (the fixed-body
# server of scripts/bench.sh). MODE: `assembling` (answer cache off, default) or `repeat`
# (answer cache on). The server runs on core 0 with the request log as deployed
# (`--log-format json`, `SENDTIME_LOG=info`), `sendtime loadtest` drives it at its max rate
# from core 1, and `perf record -g` samples the server for SECONDS (default 8) after a warm-up.
# USERS=FILE: call only these users (a CSV with a user_id header; default every user).
# NO_PERF=1: no sampling, only the rate and the server's core use (a quick before/after).
# Prints the top of `perf report` (self and children); the data stays in PROFILE_DIR
# (default target/profile/BLOCK-MODE) for `perf report -i …/perf.data`.
#
# Builds `--profile profiling` (the release build with line tables, thin LTO). Needs `perf`
# (Debian `linux-perf`) and `taskset`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

BLOCK="${1:-recommendations}"
MODE="${2:-assembling}"
SECONDS_TO_SAMPLE="${3:-8}"
AS_OF="2026-11-20T12:00:00Z"
OUT="${PROFILE_DIR:-target/profile/$BLOCK-$MODE}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
cargo build --profile profiling --bin sendtime >&2
BIN="$ROOT/target/profiling/sendtime"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

DATA="$OUT/data.jsonl"
[[ -s "$DATA" ]] || "$BIN" data generate --users 10000 --items 2000 --seed 42 --as-of "$AS_OF" \
  --out "$DATA" >&2
if [[ -n "${USERS:-}" ]]; then
  cp "$USERS" "$OUT/users.csv"
else
python3 - "$DATA" "$OUT/users.csv" <<'PY'
import json, sys
users = [r["user_id"] for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "user"]
open(sys.argv[2], "w").write("user_id\n" + "".join(u + "\n" for u in users))
PY
fi

case "$MODE" in
  assembling) ANSWER_TTL=(--cache-answer-ttl-secs 0) ;;
  repeat) ANSWER_TTL=() ;;
  *) echo "MODE must be assembling or repeat" >&2; exit 2 ;;
esac
if [[ "$BLOCK" == baseline ]]; then
  SENDTIME_LOG=info "$BIN" --log-format json serve --addr 127.0.0.1:0 --data "$DATA" \
    --now "$AS_OF" >"$OUT/body-server.out" 2>/dev/null &
  PIDS+=($!)
  until grep -q "listening on" "$OUT/body-server.out" 2>/dev/null; do sleep 0.1; done
  URL="$(sed -n 's/^.*listening on \(http:[^ ]*\).*/\1/p' "$OUT/body-server.out" | head -n1)"
  USER="$(sed -n 2p "$OUT/users.csv")"
  curl -fsS -o "$OUT/body.json" "$URL/v1/users/$USER/recommendations"
  SERVER=("$BIN" baseline --addr 127.0.0.1:0 --body "$OUT/body.json")
  LOAD_BLOCK=recommendations
else
  SERVER=("$BIN" --log-format json serve --addr 127.0.0.1:0 --data "$DATA" --now "$AS_OF" "${ANSWER_TTL[@]}")
  LOAD_BLOCK="$BLOCK"
fi
SENDTIME_LOG=info taskset -c 0 "${SERVER[@]}" >"$OUT/server.out" 2>"$OUT/server.log" &
PID=$!
PIDS+=("$PID")
until grep -q "listening on" "$OUT/server.out" 2>/dev/null; do
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
URL="$(sed -n 's/^.*listening on \(http:[^ ]*\).*/\1/p' "$OUT/server.out" | head -n1)"

load() {
  rm -rf "${OUT:?}/$2"
  taskset -c 1 "$BIN" loadtest --base-url "$URL" --blocks "$LOAD_BLOCK" --plan "$1" \
    --max-in-flight 256 --users "$OUT/users.csv" --out "$OUT/$2" >/dev/null 2>&1 || true
}
echo "warming up" >&2
load "2000/s for 5s" warm
load "200000/s for 3s" warm2
echo "sampling the server for ${SECONDS_TO_SAMPLE}s under load" >&2
load "200000/s for $((SECONDS_TO_SAMPLE + 2))s" run &
LOAD=$!
sleep 1
if [[ "${NO_PERF:-0}" == 1 ]]; then
  C0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  sleep "$SECONDS_TO_SAMPLE"
  C1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
  echo "server core: $(( (C1 - C0) * 100 / $(getconf CLK_TCK) / SECONDS_TO_SAMPLE )) %"
else
  perf record -F 2999 ${PERF_CALL_GRAPH:--g} -p "$PID" -o "$OUT/perf.data" -- sleep "$SECONDS_TO_SAMPLE" 2>/dev/null >&2
fi
wait "$LOAD" || true
python3 - "$OUT/run/results.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
answered = sum(b["2xx"]["count"] for b in r["by_block"].values())
print(f"answered {answered / r['run']['elapsed_seconds']:,.0f} calls/s while sampled (perf slows the server)")
PY
[[ "${NO_PERF:-0}" == 1 ]] && exit 0
echo "== self (top 40) =="
perf report -i "$OUT/perf.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | head -40
echo "== children (top 40) =="
perf report -i "$OUT/perf.data" --children --percent-limit 2 --stdio -g none 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | head -40
echo "perf data: $OUT/perf.data" >&2
