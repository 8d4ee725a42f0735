#!/usr/bin/env bash
# The one test command (README, CI): installs what it needs, starts DynamoDB Local, then
# checks formatting, lints, lints template.yaml, and runs every test of the workspace.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing test tools"
scripts/install-tools.sh

step "starting DynamoDB Local"
eval "$(scripts/dynamodb-local.sh start)"
trap 'scripts/dynamodb-local.sh stop' EXIT

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cfn-lint template.yaml"
.tools/venv/bin/cfn-lint template.yaml

step "cargo build --workspace --bins (tests run the real binaries)"
cargo build --workspace --bins --locked

step "cargo test --workspace"
cargo test --workspace --locked
