#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and the serverless rules under both front doors:
#   1. as it is (FrontDoor default http-api);
#   2. a temporary copy whose FrontDoor default is function-url.
# cfn-lint checks every resource whatever its Condition, but the serverless rules and the
# SAM transform see the template as written; the copy makes the function-url variant an
# explicit, separately reported run. (cfn-lint's --parameters only feeds values to Ref
# resolution, it does not fix which Conditions hold, so a copy is the reliable way.)
# Needs cfn-lint and cfn-lint-serverless on PATH (scripts/install-tools.sh, .tools/venv/bin).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TEMPLATE="${1:-$ROOT/template.yaml}"

lint() {
  echo "cfn-lint $2 (FrontDoor=$1)" >&2
  cfn-lint "$2" -a cfn_lint_serverless.rules
}

lint http-api "$TEMPLATE"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
COPY="$TMP/template-function-url.yaml"
# Change only the Default line inside the FrontDoor parameter.
sed '/^  FrontDoor:$/,/^  [A-Za-z0-9]*:$/ s/^    Default: http-api$/    Default: function-url/' \
  "$TEMPLATE" > "$COPY"
if [[ "$(diff "$TEMPLATE" "$COPY" | grep -c '^>')" != 1 ]] \
   || ! grep -q '^    Default: function-url$' "$COPY"; then
  echo "lint-template: could not set the FrontDoor default to function-url in a copy" >&2
  exit 1
fi
lint function-url "$COPY"
echo "ok: template lints clean under both FrontDoor settings" >&2
