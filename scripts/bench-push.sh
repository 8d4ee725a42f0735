#!/usr/bin/env bash
# The push figure of docs/benchmarks.md: `sendtime audience push --to braze` sending
# PUSH_BENCH_USERS (default 1,000,000) users' scores to the /users/track emulator
# (tests/support/braze_track.rs) under Braze's default limit — 3,000 requests per 3 s, 75
# objects a request, so at most 75,000 users/s — and printing users/s and requests/s, with
# the busiest window's request count (it must stay at or under the limit; the run fails if
# any request was answered 429 for the limit or 400 for the cap).
#
# Usage: scripts/bench-push.sh            # debug build (what the tests use)
#        PROFILE=release scripts/bench-push.sh
#        PUSH_BENCH_USERS=200000 scripts/bench-push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [[ "${PROFILE:-dev}" == "release" ]]; then profile=(--release); fi
export PUSH_BENCH_USERS="${PUSH_BENCH_USERS:-1000000}"
nice cargo build "${profile[@]}" --bin sendtime
# Bounded: the test gives the push 15 minutes at most.
nice cargo test "${profile[@]}" -p sendtime-tests --test braze_push -- \
  --ignored --exact bench_push_users_per_second_under_the_default_limit --nocapture 2>&1 \
  | grep -E "bench-push:|test result|panicked|error" 
