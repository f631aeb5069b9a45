#!/usr/bin/env bash
# The GPU checks of issue 13 in one run, sized for the device machine (one NVIDIA H200; torch,
# transformers and sentence-transformers installed; no network; 15 minutes of device time a
# session, start included). It runs from a copy of the working tree where only the built
# extension and .gpu/ (made by `make gpu-pack`) travel besides the tracked files.
#
# Here:     make setup gpu-pack
# Then the device tool's `run` with
#   command:   bash benches/gpu_checks.sh
#   carry:     ["python/hybridrs/_core.abi3.so", ".gpu/e5",
#               ".gpu/data/xquad-r/de.json", ".gpu/data/xquad-r/el.json", ".gpu/data/xquad-r/en.json",
#               ".gpu/data/mlqa-r/en.json", ".gpu/data/mlqa-r/de.json", ".gpu/data/mlqa-r/es.json"]
#   timeout_s: 480   (about 5 minutes expected; leaves time for a second try)
# and record what it prints (also in $OUT: pytest.log, scale.log, train.log) in BENCHMARKS.md.
#
# What it runs:
#   1. tests/test_gpu.py on cuda: score blocks scored and counted on the GPU equal the
#      full-matrix kernel bit for bit (exact scores); random embeddings agree with the CPU;
#      encoding and training steps on the GPU;
#   2. benches/bench_scale.py --device cuda: 1M candidates x 10k queries, the bare matmul against
#      exact evaluation on the GPU, the GPU's peak memory;
#   3. benches/bench_train.py --device cuda: a hybridrs training step against
#      sentence-transformers' MultipleNegativesRankingLoss, the default encoder's architecture
#      with random weights (benches/gpu_model.py; its weights do not travel), batch 64, length 128.
#
# Without a GPU, GPU_CHECKS_DEVICE=cpu GPU_CHECKS_SMALL=1 runs the same steps on the CPU, small
# (how this script is checked where there is no GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${GPU_CHECKS_DEVICE:-cuda}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HYBRIDRS_CACHE=${HYBRIDRS_CACHE:-/tmp/hybridrs-gpu-cache}
export HYBRIDRS_TEST_DEVICE=$DEVICE
for f in python/hybridrs/_core.abi3.so .gpu/e5/tokenizer.json .gpu/data/xquad-r/en.json \
    .gpu/data/mlqa-r/en.json; do
    [ -e "$f" ] || { echo "gpu_checks: $f missing: run 'make gpu-pack' here and carry it" >&2; exit 2; }
done
# the tests and benchmarks read ../shared/data beside the repository
if [ ! -d ../shared/data/xquad-r ]; then
    mkdir -p ../shared && ln -sfn "$PWD/.gpu/data" ../shared/data || exit 2
fi
if [ -n "${GPU_CHECKS_SMALL:-}" ]; then
    SCALE=(--n_candidates 40000 --n_queries 600)
    TRAIN=(--batch 8 --max_length 32 --steps 2 --rounds 1)
else
    SCALE=()
    TRAIN=(--batch 64 --max_length 128 --steps 10 --rounds 3)
fi
{
    date -u
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c 'import platform, torch, transformers, sentence_transformers as st, numpy, hybridrs
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| transformers", transformers.__version__, "| sentence-transformers", st.__version__,
      "| numpy", numpy.__version__, "| hybridrs SIMD", hybridrs._core.simd_level())'
    lscpu | grep -E "^Model name|^CPU\(s\)" || true
} 2>&1 | tee "$OUT/machine.log"
MODEL="$HYBRIDRS_CACHE/multilingual-e5-small"  # also what the tests' tokenizer is read from
"$PY" benches/gpu_model.py .gpu/e5 "$MODEL" || exit 1
fail=0
echo "== tests/test_gpu.py on $DEVICE"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log" || fail=1
echo "== benches/bench_scale.py --device $DEVICE"
"$PY" benches/bench_scale.py --device "$DEVICE" --procs "" "${SCALE[@]}" 2>&1 \
    | tee "$OUT/scale.log" || fail=1
echo "== benches/bench_train.py --device $DEVICE"
"$PY" benches/bench_train.py --device "$DEVICE" --model "$MODEL" --data ../shared/data/mlqa-r \
    "${TRAIN[@]}" 2>&1 | tee "$OUT/train.log" || fail=1
echo "gpu_checks: $([ $fail = 0 ] && echo all passed || echo SOME FAILED)"
exit $fail
