#!/usr/bin/env bash
# Everything a GPU session has to run (CuPy and PyTorch preinstalled there, no pip):
#
#     bash benchmarks/gpu_session.sh          # from anywhere; logs and summary.txt go to $OUT
#     bash benchmarks/gpu_session.sh bench    # only the benchmark part;  ... tests: only the tests
#     bash benchmarks/gpu_session.sh train    # the 64x64 DCGAN on the CelebA sample (run it as its own call)
#
# bench: an untimed warm-up (a fresh machine compiles every CuPy kernel on its first use: 44+
#        distinct kernels for one float32 step, more for float64; CuPy caches them on disk, so a
#        small float32 + float64 check step compiles them for every later step and process),
#        bench_dcgan.py --check on the GPU (tinygan and PyTorch compute the same training step),
#        the benchmark at batch 128 in float32 and at batches 128 and 512 with TF32 allowed on
#        both sides, and the per-layer table at batch 128;
# tests: the suite's CuPy tests and the backend parity tests (NumPy float32 vs CuPy float32),
#        without their CuPy stand-in runs (CI does those);
# train: examples/celeba_dcgan.py --backend cupy on the 10,000-image sample.  ../shared does not
#        travel to the GPU machine: first copy it into an ignored folder of the repo
#        (`mkdir -p .data && cp -r ../shared/data/celeba-10k .data/`, `echo /.data/ >> .git/info/exclude`)
#        and name `.data` in the device tool's carry; CELEBA=path overrides.
# Each step has its own time limit and log ($OUT/<step>.log), and a failing step does not stop
# the others; the limits add up to under 10 minutes (the device tool's limit per command), the
# benchmark first.  $OUT/summary.txt: every step with its exit code, then the tables.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tinygan_gpu_session}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

step() {   # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name: $*" | tee -a "$SUMMARY"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s$([ $rc -eq 124 ] && echo ' (TIME LIMIT)')" | tee -a "$SUMMARY"
    tail -n 40 "$OUT/$name.log"
}

PART="${1:-all}"
step environment 30 sh -c 'nvidia-smi; python -c "
import numpy, cupy, torch
print(\"numpy\", numpy.__version__, \"cupy\", cupy.__version__, \"torch\", torch.__version__,
      \"cuda available\", torch.cuda.is_available())
from tinygan.backend import cupy_available
print(\"tinygan sees CuPy with a GPU:\", cupy_available())"'
if [ "$PART" = all ] || [ "$PART" = bench ]; then
    step warmup 120 python benchmarks/bench_dcgan.py --backend cupy --check --batch 4 --filters 8
    step check 60 python benchmarks/bench_dcgan.py --backend cupy --check --batch 16
    step bench_fp32_b128 80 python benchmarks/bench_dcgan.py --backend cupy --batch 128 --warmup 5 --repeats 20
    step bench_tf32_b128_b512 110 python benchmarks/bench_dcgan.py --backend cupy --batch 128 512 --tf32 --warmup 5 --repeats 20
    step layers_fp32_b128 80 python benchmarks/bench_dcgan.py --backend cupy --layers --batch 128 --warmup 3 --repeats 20
fi
if [ "$PART" = all ] || [ "$PART" = tests ]; then
    step tests_cupy_and_parity 110 python -m pytest -q -p no:cacheprovider -rs -k "(cupy or parity) and not standin" tests
fi
if [ "$PART" = train ]; then
    CELEBA="${CELEBA:-.data/celeba-10k}"
    step train_dcgan64_celeba 570 python examples/celeba_dcgan.py --backend cupy --data "$CELEBA" \
        --epochs "${EPOCHS:-5}" --no-progress --log-every 50 --out "$OUT/celeba_dcgan"
fi

{
    echo
    echo "== tables"
    for f in check bench_fp32_b128 bench_tf32_b128_b512 layers_fp32_b128 tests_cupy_and_parity train_dcgan64_celeba; do
        [ -f "$OUT/$f.log" ] || continue
        echo "-- $f"
        grep -v "^$" "$OUT/$f.log" | tail -n 40
    done
} >> "$SUMMARY"
echo "logs in $OUT"
