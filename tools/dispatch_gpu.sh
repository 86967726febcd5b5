#!/usr/bin/env bash
# The GPU runs of the dispatch layout, writing logs and the benchmark CSV under $OUT.
#   OUT=/some/folder bash tools/dispatch_gpu.sh tests   # the tests, interpreter-sized and DeepSeek-V3 sized
#   OUT=/some/folder bash tools/dispatch_gpu.sh bench   # python -m moe_lab.measure.dispatch_bench
# Each part stops itself well inside 8 minutes (tests: 240 s, bench: 300 s).
set -u
: "${OUT:?set OUT to an output folder}"
what="${1:-tests}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD" MOE_LAB_QUIET=1 TQDM_DISABLE=1 MPLBACKEND=Agg
PY="${PYTHON:-python}"
case "$what" in
  tests)
    timeout 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" \
        tests/test_dispatch.py tests/test_dispatch_exercise.py tests/test_dispatch_bench.py tests/test_dispatch_gpu.py 2>&1 | tee "$OUT/dispatch_tests.log"
    exit "${PIPESTATUS[0]}" ;;
  bench)
    timeout 300 "$PY" -m moe_lab.measure.dispatch_bench --out "$OUT" 2>&1 | tee "$OUT/dispatch_bench.log"
    exit "${PIPESTATUS[0]}" ;;
  *)
    echo "usage: OUT=folder bash tools/dispatch_gpu.sh tests|bench" >&2
    exit 2 ;;
esac
