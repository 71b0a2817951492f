# gate0 — the README's interface. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The venv is rebuilt when the pinned requirements change.
VENV_STAMP := $(VENV)/.gate0-$(shell cat requirements.txt requirements-dev.txt 2>/dev/null | md5sum | cut -c1-12)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export GATE0_LAB_PORT ?= 55432
# PG=MAJOR: the lab targets and pytest act on that major's own lab (lab/pg.sh: binaries, directory,
# port); unset, they act on the default lab (Debian's server).
PG ?=
ifneq ($(strip $(PG)),)
export GATE0_PG := $(PG)
endif
# The majors test-matrix runs (PG=MAJOR narrows it to one), and what each non-default major runs in
# `make test` (MATRIX_FOCUS= runs the whole suite there too; see README "Supported PostgreSQL versions").
MATRIX ?= $(if $(strip $(PG)),$(PG),$(shell lab/pg.sh majors))
MATRIX_FOCUS ?= tests/matrix_focus.txt

.PHONY: help venv pg test-tools lab-up lab-down lab-reset lab-dsn demo test test-fresh lint pytest bench \
	test-matrix test-matrix-others bench-fingerprint bench-scale topo-up topo-down topo-status directus test-directus

help:
	@echo "make demo       set up what is missing, start the lab, run gate0 on it"
	@echo "make test       ruff, ansible-lint and every test (what CI runs); every part runs, failures named at the end"
	@echo "make test-fresh the two commands in a fresh Debian 12 root (root, ~15 min; tests/fresh_debian.sh)"
	@echo "make lab-up     start the local lab (127.0.0.1:$(GATE0_LAB_PORT), socket in .lab/); PG=16: that major's lab"
	@echo "make lab-down   stop the lab"
	@echo "make lab-reset  put the lab's databases back to the seed state"
	@echo "make -s lab-dsn print the lab superuser's libpq DSN"
	@echo "make test-matrix the module and playbook tests on every supported major (lab/pg-majors.txt)"
	@echo "make test-directus  gate0 against a real Directus 11.3.5 (installs it into .cache/directus once)"
	@echo "make bench      print speed figures"
	@echo "make topo-up    start the test topology: SSH database host (netns) + podman containers (root)"
	@echo "make topo-down  stop it and remove everything topo-up created"

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt requirements-dev.txt
	@rm -rf $(VENV)
	@echo "gate0: creating $(VENV) (pinned packages from requirements-dev.txt)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# apt-get install PACKAGES, quiet: apt's output is shown only when it fails.
APT_INSTALL = log=$$(mktemp); \
	{ apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $(1); } \
	>"$$log" 2>&1 || { tail -n 20 "$$log" >&2; rm -f "$$log"; exit 1; }; rm -f "$$log"

# PostgreSQL server binaries: Debian's packages, installed when missing and we are root.
pg:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "$$GATE0_PG_BIN" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "gate0: installing PostgreSQL server packages (apt-get install postgresql)"; \
		$(call APT_INSTALL,postgresql postgresql-contrib); \
	else \
		echo "gate0: no PostgreSQL server found: install the 'postgresql' package (Debian) or set GATE0_PG_BIN" >&2; exit 1; \
	fi

lab-up: pg
	@start=$$(date +%s%N); lab/lab.sh up && \
	echo "gate0: lab up in $$(( ($$(date +%s%N) - start) / 1000000 )) ms ($$(lab/lab.sh dsn))"

lab-down:
	@lab/lab.sh down && echo "gate0: lab stopped"

lab-reset:
	@lab/lab.sh reset && echo "gate0: lab databases reset to the seed state"

lab-dsn:
	@lab/lab.sh dsn

# Runs gate0 on the lab, then prints the verdict, every check's line and the report paths (from
# the run's JSON reports). Exits non-zero on FAIL.
demo: venv lab-up
	@start=$$(date +%s); rc=0; \
	$(BIN)/ansible-playbook playbooks/gate0.yml > .lab/demo.log 2>&1 || rc=$$?; \
	echo "gate0: ansible-playbook exit code $$rc, its output in .lab/demo.log"; \
	src=0; $(BIN)/python tools/gate0_summary.py reports --since $$start || src=$$?; \
	if [ $$src -eq 2 ]; then tail -n 30 .lab/demo.log >&2; fi; \
	[ $$rc -eq 0 ] && [ $$src -eq 0 ]

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ansible-lint -q

# PYTEST_ARGS: e.g. -m "not topo and not directus" leaves out the root-only topology tests (README
# "Two commands"); an -m here replaces pyproject's, so keep "not directus" in it.
PYTEST_ARGS ?=
pytest: venv pg test-tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The client tools the tests use beyond the base system: ssh (Ansible's ssh connection: the
# multi-host tests' unreachable host, the topology). Installed when missing and we are root.
test-tools:
	@if command -v ssh >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "gate0: installing the tests' ssh client (apt-get install openssh-client)"; \
		$(call APT_INSTALL,openssh-client); \
	else \
		echo "gate0: no ssh client: install the 'openssh-client' package (Debian)" >&2; exit 1; \
	fi

# Every part runs whatever failed before it; the closing lines name each failing part (exit 1).
# TEST_PARTS narrows it, e.g. `make test TEST_PARTS="lint pytest"`; root-only tests: README "Two commands".
TEST_PARTS ?= lint pytest test-matrix-others test-directus
test: venv pg
	@MAKE="$(MAKE)" tests/make_test.sh $(TEST_PARTS)

# The README's two commands in a freshly bootstrapped Debian 12 root (root; tests/fresh_debian.sh).
# FRESH_BRANCH: the committed branch to clone there (default: the current one).
FRESH_BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD)
test-fresh:
	@tests/fresh_debian.sh $(FRESH_BRANCH)

# Every supported major, one after the other, each against its own lab (started and stopped by the
# tests' lab fixture); a summary line per major; fails when any major fails.
test-matrix: venv pg
	@tests/matrix.sh $(MATRIX)

# What `make test` adds to the default lab's full run: the other majors, focused (MATRIX_FOCUS).
test-matrix-others: venv pg
	@tests/matrix.sh --skip-default $(if $(strip $(MATRIX_FOCUS)),--focus $(MATRIX_FOCUS)) $(MATRIX)

# A real Directus (npm registry, pinned 11.3.5, cached in .cache/directus, ~470 MB) and the tests that
# gate it (tests/test_directus.py, marker `directus`): the last part of `make test` (the first install
# takes minutes). Root: Directus runs in network namespaces with only `lo` (as another user the tests
# skip, saying so).
directus:
	@start=$$(date +%s); tests/directus/setup.sh >/dev/null && \
	echo "gate0: Directus ready in .cache/directus ($$(( $$(date +%s) - start )) s)"

test-directus: venv pg directus
	@start=$$(date +%s); rc=0; $(BIN)/pytest -m directus -s tests/test_directus.py || rc=$$?; \
	echo "gate0: test-directus $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

bench: venv lab-up
	$(BIN)/python bench/run.py

bench-fingerprint: venv lab-up
	$(BIN)/python bench/fingerprint.py

bench-scale: venv lab-up
	$(BIN)/python bench/scale.py

# The test topology (topo/topo.sh): controller -> SSH -> database host (a network namespace) ->
# `postgres` and `directus` containers (podman, the docker CLI). Root only; installs what it needs.
topo-up: pg
	@topo/topo.sh up

topo-down:
	@topo/topo.sh down

topo-status:
	@topo/topo.sh status && echo "gate0: topology up" || { echo "gate0: topology down"; exit 1; }
