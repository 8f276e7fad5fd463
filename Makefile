# One command each on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# Debian packages the tests need (chromium, postgresql, gnome-keyring), when missing.
.PHONY: demo test system-packages lint typecheck firmware bench protocol-gen sbom clean

$(STAMP): pyproject.toml tools/requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run only)..."
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -r tools/requirements-nodeps.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scalppen demo

system-packages:
	@bash tools/system_packages.sh

test: $(STAMP) system-packages
	$(PY) -m scalppen_protocol.codegen --check
	$(PY) tools/compile_firmware.py
	@echo "--- firmware tests inside MicroPython (unix port, firmware as .mpy) ---"
	$(PY) -m pytest -m micropython -v --no-header
	@echo "--- everything else ---"
	$(PY) -m pytest -q -m "not micropython"

lint: $(STAMP)
	$(VENV)/bin/ruff check host protocol hardware tests bench tools

typecheck: $(STAMP)
	$(VENV)/bin/mypy -p scalppen -p scalppen_protocol -p scalppen_hardware
	$(PY) tools/typecheck_firmware.py

firmware: $(STAMP)
	$(VENV)/bin/scalppen build

protocol-gen: $(STAMP)
	$(PY) -m scalppen_protocol.codegen

sbom: $(STAMP)
	$(PY) tools/sbom.py

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
