#!/usr/bin/env bash
# Our load generators against oha on the baseline (issue 9, "the generator at the limit").
#
# Starts `sendtime baseline --body FILE` pinned to core 0 and drives it from core 1 (taskset)
# with, in turn: oha's max rate (-z Ns -c 256), `sendtime loadtest`'s max rate
# (--plan "GEN_RATE/s for Ns" --max-in-flight 256), `campaign send`'s max rate (a synthetic
# audience at GEN_RATE calls/s, concurrency 256 from the start), then oha and `loadtest` at a
# fixed 2,000 calls/s for 20 s (latency from each call's intended send time; oha with
# --latency-correction). Prints each max rate, its ratio to oha's, the generator's CPU per
# request (utime+stime over the run ÷ requests answered) and the p50/p99 of the fixed runs.
# GEN_RATE is 200,000/s by default: a schedule of 100,000/s would cap the generators below
# oha's rate on this baseline (~120,000/s), so their ratio to oha could not reach 0.8.
#
#   scripts/bench-generator.sh            # ~1.5 minutes; needs a release build and oha
#                                         # (scripts/bench.sh installs it into .tools/oha)
# Env: BIN (default target/release/sendtime), OHA (default .tools/oha/bin/oha), BODY (default: a recommendations answer of `sendtime serve`),
#      SECONDS_MAX (10), FIXED_SECONDS (20), GEN_RATE (200000), REPEAT (1: max-rate runs each),
#      ONLY (a space-separated subset of: oha loadtest send fixed), KEEP=1 keeps the work dir.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

BIN="${BIN:-$ROOT/target/release/sendtime}"
OHA="${OHA:-$ROOT/.tools/oha/bin/oha}"
"$OHA" --version >/dev/null 2>&1 || { echo "oha not found: set OHA=" >&2; exit 1; }
SECONDS_MAX="${SECONDS_MAX:-10}"
FIXED_SECONDS="${FIXED_SECONDS:-20}"
FIXED_RATE=2000
GEN_RATE="${GEN_RATE:-200000}"
IN_FLIGHT=256
REPEAT="${REPEAT:-1}"
ONLY="${ONLY:-oha loadtest send fixed}"
want() { [[ " $ONLY " == *" $1 "* ]]; }

if (($(nproc) >= 2)); then
  SERVER_CPU=(taskset -c 0)
  GEN_CPU=(taskset -c 1)
else
  SERVER_CPU=()
  GEN_CPU=()
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# start NAME CMD…: starts a server on core 0 and waits for its "listening on" line; sets URL.
start() {
  local name=$1
  shift
  "${SERVER_CPU[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 100); do
    grep -q "listening on" "$WORK/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  URL="$(sed -n 's/^.*listening on \(http:[^ ]*\).*/\1/p' "$WORK/$name.out" | head -n1)"
  [[ -n "$URL" ]] || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
}

if [[ -z "${BODY:-}" ]]; then
  start serve "$BIN" serve --addr 127.0.0.1:0
  curl -fsS -o "$WORK/body.json" "$URL/v1/users/u000001/recommendations"
  kill "$PID"
  BODY="$WORK/body.json"
fi
start baseline "$BIN" baseline --addr 127.0.0.1:0 --body "$BODY"
BASE=$URL
echo "baseline $BASE ($(wc -c <"$BODY") bytes), oha $("$OHA" --version | awk '{print $2}'), bin $BIN" >&2

# timed NAME CMD…: runs CMD on the generator core; its utime+stime go to NAME.cpu.
timed() {
  local name=$1
  shift
  TIMEFORMAT='%U %S'
  { time "${GEN_CPU[@]}" "$@" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"; } 2>"$WORK/$name.cpu" || true
}

# A short warm-up: connections, page cache, the server's allocator.
"${GEN_CPU[@]}" "$OHA" -z 2s -c "$IN_FLIGHT" --no-tui --output-format json "$BASE/v1/users/u000001/recommendations" >/dev/null 2>&1 || true

for i in $(seq 1 "$REPEAT"); do
  if want oha; then
    echo "oha max #$i" >&2
    timed "oha-max-$i" "$OHA" -z "${SECONDS_MAX}s" -c "$IN_FLIGHT" --no-tui --output-format json \
      "$BASE/v1/users/u000001/recommendations"
  fi
  if want loadtest; then
    echo "loadtest max #$i" >&2
    timed "lt-max-$i" "$BIN" loadtest --base-url "$BASE" --plan "${GEN_RATE}/s for ${SECONDS_MAX}s" \
      --max-in-flight "$IN_FLIGHT" --out "$WORK/lt-max-$i"
  fi
  if want send; then
    echo "campaign send max #$i" >&2
    timed "send-max-$i" "$BIN" campaign send --base-url "$BASE" --synthetic $((100000 * SECONDS_MAX)) \
      --rate $((GEN_RATE * 60)) --max-concurrency "$IN_FLIGHT" --initial-concurrency "$IN_FLIGHT" \
      --out "$WORK/send-max-$i.jsonl" --summary "$WORK/send-max-$i.json"
    rm -f "$WORK/send-max-$i.jsonl"
  fi
done
if want fixed; then
  echo "oha at ${FIXED_RATE}/s" >&2
  timed oha-fixed "$OHA" -n $((FIXED_RATE * FIXED_SECONDS)) -q "$FIXED_RATE" --latency-correction -c 64 \
    --no-tui --output-format json "$BASE/v1/users/u000001/recommendations"
  echo "loadtest at ${FIXED_RATE}/s" >&2
  timed lt-fixed "$BIN" loadtest --base-url "$BASE" --plan "${FIXED_RATE}/s for ${FIXED_SECONDS}s" \
    --max-in-flight "$IN_FLIGHT" --out "$WORK/lt-fixed"
fi

python3 - "$WORK" "$REPEAT" <<'PY'
import base64, glob, json, math, os, struct, sys

work, repeat = sys.argv[1], int(sys.argv[2])

sys.path.insert(0, "scripts")  # run from the repository root
from hdr import Hdr

def path(name):
    return os.path.join(work, name)

def cpu(name):
    try:
        u, s = open(path(name + ".cpu")).read().split()[:2]
        return float(u) + float(s)
    except (OSError, ValueError):
        return float("nan")

def oha(name):
    try:
        j = json.load(open(path(name + ".stdout")))
    except (OSError, ValueError):
        return None
    answered = sum(j.get("statusCodeDistribution", {}).values())
    pct = j.get("latencyPercentiles", {})
    return dict(rate=answered / j["summary"]["total"], n=answered, cpu=cpu(name),
                p50=(pct.get("p50") or 0) * 1000, p99=(pct.get("p99") or 0) * 1000)

def loadtest(name):
    try:
        r = json.load(open(path(name + "/results.json")))
    except (OSError, ValueError):
        return None
    counts, h = {}, None
    for cells in r["by_block"].values():
        for cls, cell in cells.items():
            counts[cls] = counts.get(cls, 0) + cell["count"]
            x = Hdr(cell["latency"])
            h = x if h is None else h.merge(x)
    n = sum(counts.values()) - counts.get("in_flight_cap", 0) - counts.get("connect_error", 0)
    secs = max(r["run"]["elapsed_seconds"], r["run"]["schedule_seconds"], 1.0)
    return dict(rate=n / secs, n=n, cpu=cpu(name), p50=h.q(0.5), p99=h.q(0.99),
                capped=counts.get("in_flight_cap", 0),
                non2xx=sum(v for k, v in counts.items() if k not in ("2xx", "in_flight_cap")))

def send(name):
    try:
        s = json.load(open(path(name + ".json")))
    except (OSError, ValueError):
        return None
    return dict(rate=s["requests_per_second"], n=s["attempts"], cpu=cpu(name),
                p50=s["latency_ms_p50"], p99=s["latency_ms_p99"])

def rng(xs, fmt):
    xs = [x for x in xs if x == x]
    if not xs:
        return "—"
    lo, hi = min(xs), max(xs)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"

runs = {k: [f(f"{p}-max-{i}") for i in range(1, repeat + 1)]
        for k, f, p in (("oha", oha, "oha"), ("loadtest", loadtest, "lt"), ("campaign send", send, "send"))}
runs = {k: [x for x in v if x] for k, v in runs.items()}
oha_rate = max((x["rate"] for x in runs["oha"]), default=float("nan"))
print(f"{'generator':<15} {'max rate, calls/s':>20} {'÷ oha':>12} {'CPU µs/request':>16}")
for k, xs in runs.items():
    if not xs:
        continue
    print(f"{k:<15} {rng([x['rate'] for x in xs], lambda v: f'{v:,.0f}'):>20} "
          f"{rng([x['rate'] / oha_rate for x in xs], lambda v: f'{v:.2f}'):>12} "
          f"{rng([x['cpu'] / max(x['n'], 1) * 1e6 for x in xs], lambda v: f'{v:.1f}'):>16}")
    for x in xs:
        extra = f", in_flight_cap {x['capped']:,}, non-2xx {x['non2xx']:,}" if "capped" in x else ""
        print(f"{'':<15} run: {x['rate']:,.0f}/s, {x['n']:,} answered, {x['cpu']:.2f} s CPU{extra}")
fo, fl = oha("oha-fixed"), loadtest("lt-fixed")
for k, x in (("oha", fo), ("loadtest", fl)):
    if x:
        print(f"at 2,000/s {k:<9} p50 {x['p50']:.3f} ms  p99 {x['p99']:.3f} ms  "
              f"({x['n']:,} answered, {x['cpu']:.2f} s CPU)")
PY
