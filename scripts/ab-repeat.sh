#!/usr/bin/env bash
# A/B of the serving path with the answer cache on (as deployed: Braze's repeat calls), two
# release builds of `sendtime` in the same minutes, alternately A, B, A, B per block, so a
# noisy host's drift falls on both (docs/benchmarks.md, [ingest]).
#
#   scripts/ab-repeat.sh OLD_BIN NEW_BIN [BLOCK…]     # default blocks: recommendations dormancy
#
# Each run: `serve --data` (10,000 generated users) on core 0, `sendtime loadtest` on core 1:
# a 5 s warm pass at 2,000/s, 40,000 calls at 2,000/s (the server's CPU per 100k requests and
# p99), then `200000/s for 8s` (the max rate). Bounded: ~35 s a run.
set -euo pipefail
OLD=${1:?old sendtime binary}; NEW=${2:?new sendtime binary}; shift 2
BLOCKS=("${@:-recommendations dormancy}")
# shellcheck disable=SC2206
BLOCKS=(${BLOCKS[*]})
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; cd "$WORK"
AS_OF="$(date -u +%Y-%m-%dT12:00:00Z)"
"$NEW" data generate --users 10000 --items 2000 --seed 42 --as-of "$AS_OF" --out data.jsonl >/dev/null
python3 -c "
import json
u=[r['user_id'] for r in map(json.loads,open('data.jsonl')) if r.get('kind')=='user']
open('users.csv','w').write('user_id\n'+''.join(x+'\n' for x in u))"
run() { # label bin block
  local label=$1 bin=$2 block=$3 pid url c0 c1 p99 rate
  SENDTIME_LOG=info taskset -c 0 "$bin" --log-format json serve --addr 127.0.0.1:0 --data data.jsonl \
    --now "$AS_OF" >srv.out 2>srv.log &
  pid=$!
  for _ in $(seq 1 300); do grep -q "listening on" srv.out 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^.*listening on \(http:[^ ]*\).*/\1/p' srv.out | head -n1)
  lt() { taskset -c 1 "$bin" loadtest --base-url "$url" --blocks "$block" --plan "$1" \
    --max-in-flight 256 --users users.csv --out "$2" >/dev/null 2>&1 || true; }
  lt "2000/s for 5s" warm
  c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  lt "2000/s for 20s" fixed
  c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  lt "200000/s for 8s" max
  kill "$pid"; wait "$pid" 2>/dev/null || true
  p99=$(sed -n 's/^| [^|]* | p99 < 500 ms.*| p99 \(.*\) |$/\1/p' fixed/report.md)
  rate=$(sed -n 's/^| achieved (answered calls over the elapsed time) | \(.*\) |$/\1/p' max/report.md)
  printf '%s %s: CPU/100k %s s, p99 at 2,000/s %s, max %s calls/s\n' "$label" "$block" \
    "$(python3 -c "print(round($((c1 - c0)) / 100 / 40000 * 100000, 2))")" "$p99" "$rate"
}
for block in "${BLOCKS[@]}"; do
  run old "$OLD" "$block"; run new "$NEW" "$block"; run old "$OLD" "$block"; run new "$NEW" "$block"
done
