# Two entry points: `make demo` (the main job) and `make test` (the full suite).
# Both create the virtual environment and install the package on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := data/demo

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Pinned: a CPU build of torch that lies on this machine's disk (an unpinned
	# torch would pull a multi-GB CUDA build).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mmscel synth --scale tiny --seed 0 --out $(DEMO) --overwrite
	$(BIN)/mmscel prepare --data $(DEMO)
	$(BIN)/mmscel baseline --data $(DEMO) --out oof/submissions/mean_profile.csv.gz
	$(BIN)/mmscel score oof/submissions/mean_profile.csv.gz --data $(DEMO) --name mean-profile
	$(BIN)/mmscel level1 configs/cite/*.yaml configs/multi/*.yaml --data $(DEMO) --oof oof/demo --overwrite
	$(BIN)/mmscel level2 configs/blend.yaml --data $(DEMO) --oof oof/demo
	$(BIN)/mmscel submit --data $(DEMO) --oof oof/demo
	$(BIN)/mmscel leaderboard --data $(DEMO) --oof oof/demo
	$(BIN)/mmscel report --data $(DEMO) --oof oof/demo

# pytest exits 5 when it collected no test: that must fail, not pass silently.
# The tuning tests start a PostgreSQL server of their own: its binaries must be installed.
test: install
	bash .ci/ensure-postgres
	bash .ci/ensure-chromium
	$(BIN)/python -m pytest -n auto; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: install
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
