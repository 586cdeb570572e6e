# mlflow_green — set-up, demo and tests. Each target does its own set-up from a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A CPU build of PyTorch: a plain `torch` (or a range admitting newer releases) downloads CUDA.
TORCH_PIN := torch==2.13.0

.PHONY: demo test test-compat install install-dev bench lint clean browser

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[all]' '$(TORCH_PIN)'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[all,dev]' '$(TORCH_PIN)'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Headless Chromium for the browser tests (Debian packages); skipped quietly where apt is absent.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	  echo "chromium not installed: browser tests will be skipped"; }

demo: install
	$(PY) examples/demo.py

test: install-dev browser
	$(VENV)/bin/ruff check mlflow_green tests benchmarks examples
	$(PY) -m pytest -q -n 4 --dist loadfile

# The MLflow seam tests (private names, error classification, resume, pipeline, the gate with
# basic-auth on real servers) against the
# oldest MLflow the package claims (3.0.x) and the newest 3.x on the index; one venv per
# version (.venv-compat-<version>, reused). The newest: 3.17.2 — 3.18.0 is listed on the index
# but not installable from it (its pin mlflow-tracing==3.18.0 is absent); once it is, run
# `make test-compat COMPAT_VERSIONS="3.0.1 3.18.0"`.
COMPAT_VERSIONS ?= 3.0.1 3.17.2
test-compat:
	PYTHON=$(PYTHON) COMPAT_VERSIONS="$(COMPAT_VERSIONS)" scripts/test_compat.sh

bench: install-dev
	$(PY) benchmarks/run_all.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy mlflow_green

clean:
	rm -rf $(VENV) .venv-compat-* demo-out .pytest_cache
