# Thin entry points; the logic lives in lab/, deploy/ and tests/.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
N      ?= 2
PROFILE ?=

.PHONY: help venv test test-unit test-lab demo lab-up lab-down lab-status verify docs audit bench molecule clean

help:
	@echo "make demo       set up, bring up a $(N)-node lab, deploy everything, verify"
	@echo "make test       unit tests, then the lab integration test (what CI runs)"
	@echo "make test-unit  unit tests only (no containers, seconds)"
	@echo "make lab-up N=2 [PROFILE=hgx-h100-8x]  /  make lab-down  /  make lab-status"
	@echo "make audit [INVENTORY=...]  drift audit (exit 1 when a host drifted)"
	@echo "make bench [SIZES=1,4,8]   fleet-scale deploy benchmark"
	@echo "make molecule              molecule test, offline, on lab nodes"

$(BIN)/pyinfra: pyproject.toml node/pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ./node -e '.[test]'
	@touch $@

venv: $(BIN)/pyinfra

test: test-unit test-lab

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-lab: venv
	$(BIN)/pytest -q -m lab tests/lab

lab-up: venv
	$(BIN)/python -m lab up $(N) $(if $(PROFILE),--profile $(PROFILE))

lab-down: venv
	$(BIN)/python -m lab down

lab-status: venv
	$(BIN)/python -m lab status

verify: venv
	$(BIN)/pytest -q tests/verify --hosts=$$($(BIN)/python -m lab hosts)

demo: lab-up
	$(BIN)/pyinfra -y inventories/lab.py deploy/full.py
	$(MAKE) verify

audit: venv
	$(BIN)/python deploy/audit.py $(or $(INVENTORY),inventories/lab.py)

bench: venv
	$(BIN)/python bench/fleet.py --sizes $(or $(SIZES),1,4,8)

molecule: venv
	$(BIN)/pip install -q -e '.[molecule]'
	MOLECULE_LAB_IMAGE=$$($(BIN)/python -c 'from lab.image import ensure_image; print(ensure_image(log=lambda *_: None))') \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test

docs: venv
	$(BIN)/python -m roles.docs

clean:
	rm -rf $(VENV) .pytest_cache
