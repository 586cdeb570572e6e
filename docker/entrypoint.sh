#!/bin/sh
# Start the MLflow tracking server with the mlflow_green carbon gate on.
#
# The same script runs as the container entrypoint (docker/Dockerfile.server) and natively
# (tests/docker/test_entrypoint.py runs it against a local PostgreSQL). Configuration is
# environment only, so that compose files, Kubernetes manifests and systemd units all set the
# same names; extra arguments are passed on to `mlflow server` unchanged.
#
#   MLFLOW_BACKEND_STORE_URI      SQLAlchemy URI of the tracking + registry store
#                                 (default sqlite:///mlflow.db in the working directory)
#   MLFLOW_ARTIFACTS_DESTINATION  where proxied artifacts go: a path, s3://, gs://, ...
#                                 (default ./mlartifacts)
#   MLFLOW_GREEN_POLICY           YAML gate policy; must be a readable file when set
#   MLFLOW_APP_NAME               green-gate (default) or green-gate-auth (basic-auth first)
#   HOST, PORT                    bind address and port (default 0.0.0.0:5000)
#   MLFLOW_WORKERS                server worker processes (default 2)
#   MLFLOW_ALLOWED_HOSTS          --allowed-hosts for MLflow's DNS-rebinding protection
#   MLFLOW_STATIC_PREFIX          --static-prefix, e.g. /mlflow behind a reverse proxy
#   MLFLOW_DB_WAIT_SECONDS        how long to wait for the database to accept queries (60)
#   MLFLOW_ENTRYPOINT_DRY_RUN=1   print the server command line and exit (for checks)
#   PYTHON, MLFLOW_BIN            interpreter and mlflow executable (default: from PATH)
set -eu

log() { printf 'mlflow-green-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# A URI with its password replaced, for log lines.
redact() { printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }

PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
MLFLOW_BIN="${MLFLOW_BIN:-$(command -v mlflow || true)}"
[ -n "$PYTHON" ] || die "no python3 on PATH; set PYTHON=/path/to/python"
[ -n "$MLFLOW_BIN" ] || die "no mlflow on PATH; install mlflow-green or set MLFLOW_BIN"

BACKEND_URI="${MLFLOW_BACKEND_STORE_URI:-sqlite:///mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS_DESTINATION:-./mlartifacts}"
APP_NAME="${MLFLOW_APP_NAME:-green-gate}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-5000}"
WORKERS="${MLFLOW_WORKERS:-2}"
DB_WAIT_SECONDS="${MLFLOW_DB_WAIT_SECONDS:-60}"

case "$APP_NAME" in
  green-gate|green-gate-auth) ;;
  *) die "MLFLOW_APP_NAME=$APP_NAME: use green-gate or green-gate-auth (the gate must stay on)" ;;
esac
case "$PORT" in
  ''|*[!0-9]*) die "PORT=$PORT is not a port number" ;;
esac
case "$WORKERS" in
  ''|*[!0-9]*) die "MLFLOW_WORKERS=$WORKERS is not a whole number" ;;
esac
case "$DB_WAIT_SECONDS" in
  ''|*[!0-9]*) die "MLFLOW_DB_WAIT_SECONDS=$DB_WAIT_SECONDS is not a whole number of seconds" ;;
esac

if [ -n "${MLFLOW_GREEN_POLICY:-}" ]; then
  # The gate refuses to start on an invalid policy; a missing file is caught here with a
  # clearer message (a forgotten volume mount is the usual cause).
  [ -r "$MLFLOW_GREEN_POLICY" ] || die "MLFLOW_GREEN_POLICY=$MLFLOW_GREEN_POLICY is not a readable file (is the policy volume mounted?)"
  export MLFLOW_GREEN_POLICY
fi

case "$BACKEND_URI" in
  sqlite:///*)
    # sqlite:///relative.db or sqlite:////absolute/path.db: make sure the directory exists.
    db_path="${BACKEND_URI#sqlite:///}"
    db_dir="$(dirname -- "$db_path")"
    mkdir -p -- "$db_dir" || die "cannot create $db_dir for the SQLite store"
    ;;
  postgresql*|mysql*|mssql*)
    # Wait until the database answers a query, not just until its port is open: PostgreSQL
    # accepts connections during recovery and start-up before it can serve them.
    log "waiting up to ${DB_WAIT_SECONDS}s for $(redact "$BACKEND_URI")"
    if ! last_error="$(MLFLOW_GREEN_WAIT_URI="$BACKEND_URI" MLFLOW_GREEN_WAIT_SECONDS="$DB_WAIT_SECONDS" \
      "$PYTHON" - 2>&1 <<'PY'
import os
import sys
import time

import sqlalchemy

uri = os.environ["MLFLOW_GREEN_WAIT_URI"]
deadline = time.monotonic() + float(os.environ["MLFLOW_GREEN_WAIT_SECONDS"])
engine = sqlalchemy.create_engine(uri, pool_pre_ping=True)
last = "no attempt"
while True:
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        sys.exit(0)
    except Exception as exc:  # any driver error means "not yet"
        last = " ".join(str(exc).split())[:200]
    if time.monotonic() >= deadline:
        print(last)
        sys.exit(1)
    time.sleep(1)
PY
)"; then
      die "database $(redact "$BACKEND_URI") is not reachable after ${DB_WAIT_SECONDS}s: $(redact "$last_error" | tr '\n' ' ' | cut -c1-300)"
    fi
    ;;
  *) ;;
esac

case "$ARTIFACTS" in
  *://*) ;;
  *) mkdir -p -- "$ARTIFACTS" || die "cannot create the artifacts directory $ARTIFACTS" ;;
esac

set -- "$MLFLOW_BIN" server \
  --app-name "$APP_NAME" \
  --backend-store-uri "$BACKEND_URI" \
  --artifacts-destination "$ARTIFACTS" \
  --serve-artifacts \
  --host "$HOST" \
  --port "$PORT" \
  --workers "$WORKERS" \
  ${MLFLOW_ALLOWED_HOSTS:+--allowed-hosts "$MLFLOW_ALLOWED_HOSTS"} \
  ${MLFLOW_STATIC_PREFIX:+--static-prefix "$MLFLOW_STATIC_PREFIX"} \
  "$@"

if [ "${MLFLOW_ENTRYPOINT_DRY_RUN:-0}" = "1" ]; then
  for arg in "$@"; do printf '%s\n' "$arg"; done
  exit 0
fi

log "starting mlflow server --app-name $APP_NAME on $HOST:$PORT (store $(redact "$BACKEND_URI"), policy ${MLFLOW_GREEN_POLICY:-none})"
exec "$@"
