#!/usr/bin/env bash
# make test-compat: the MLflow seam tests on the oldest MLflow the package claims (3.0.x) and the
# newest 3.x on the index. One venv per version (.venv-compat-<version>, reused), with MLflow,
# the test tools and this package (no torch: the tests run plain loops).
# Usage: scripts/test_compat.sh [version ...]   (default: $COMPAT_VERSIONS or "3.0.1 3.17.2")
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VERSIONS=("$@")
if [ ${#VERSIONS[@]} -eq 0 ]; then
  read -r -a VERSIONS <<< "${COMPAT_VERSIONS:-3.0.1 3.17.2}"
fi
TESTS=(tests/tracking/test_mlflow_compat.py tests/tracking/test_failures.py
       tests/tracking/test_resume.py tests/tracking/test_pipeline.py)
# The gate with MLflow's basic-auth, on real servers: the auth seams differ most across releases.
for extra in tests/registry/test_mlflow_seams.py tests/registry/test_gate_auth.py \
             tests/registry/test_green_api_auth.py; do
  [ -f "$extra" ] && TESTS+=("$extra")
done
status=0
for version in "${VERSIONS[@]}"; do
  venv=".venv-compat-$version"
  if [ ! -f "$venv/.installed" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    extra=()
    # MLflow 3.0-3.1 import SQLAlchemy pool names that SQLAlchemy 2.1 removed.
    case "$version" in 3.0.*|3.1.*) extra+=("sqlalchemy<2.1") ;; esac
    "$venv/bin/python" -m pip install -q "mlflow[auth]==$version" "${extra[@]}" "nvidia-ml-py>=12" "codecarbon>=3.0,<3.4" \
      "pandas>=1.5" "pyyaml>=6" "pytest>=8" "pytest-timeout>=2.2" "hypothesis>=6" "psycopg2-binary>=2.9"
    "$venv/bin/python" -m pip install -q --no-deps -e .
    touch "$venv/.installed"
  fi
  echo "== MLflow $version: ${TESTS[*]}"
  if ! PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not postgres" "${TESTS[@]}"; then
    echo "== MLflow $version: FAILED"
    status=1
  fi
done
exit $status
