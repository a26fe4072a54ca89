# Two commands for a new user: `make run` (the demo) and `make test` (the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: run test test-slurm lint docs bench-resample bench-predict bench-samples bench-skill figure clean

$(BIN)/snakemake: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report results/demo/report.html

test: $(BIN)/snakemake
	$(BIN)/pytest

# the SLURM profile on a real one-node SLURM (as root: installs slurm-wlm + munge from Debian), compared with a local run
test-slurm: $(BIN)/snakemake
	bash .ci/slurm/run.sh

lint: $(BIN)/snakemake
	$(BIN)/snakemake --lint
	$(BIN)/snakemake --lint --software-deployment-method conda
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# the documentation site (MkDocs, Material theme) into build/site; --strict fails on a broken link or a missing page
$(BIN)/mkdocs: $(BIN)/snakemake
	$(BIN)/pip install --quiet -e ".[dev,docs]"
	touch $@

docs: $(BIN)/mkdocs
	$(BIN)/mkdocs build --strict

bench-resample: $(BIN)/snakemake
	$(BIN)/python -m experiments.bench resample

bench-predict: $(BIN)/snakemake
	$(BIN)/python -m experiments.bench predict --days 10

bench-samples: $(BIN)/snakemake
	$(BIN)/python -m experiments.bench samples --scale 30

# the skill panel (9 workflow runs; not part of CI), e.g. make bench-skill SKILL_ARGS='--worlds tune --set models.l2=0'
bench-skill: $(BIN)/snakemake
	$(BIN)/python -m experiments.bench skill --cores $(CORES) $(SKILL_ARGS)

figure: results/demo/evaluation/figures/surface_maps.png
	cp results/demo/evaluation/figures/surface_maps.png docs/demo_maps.png

clean:
	rm -rf results/demo resources/demo .snakemake
