#!/usr/bin/env bash
# Every GPU run of the dispatch layout in one command: its tests (interpreter-sized and DeepSeek-V3
# sized), then the benchmark. Writes logs and the benchmark CSV under $OUT.
#   OUT=/some/folder bash tools/dispatch_gpu.sh
set -u
: "${OUT:?set OUT to an output folder}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD" MOE_LAB_QUIET=1 TQDM_DISABLE=1 MPLBACKEND=Agg
PY="${PYTHON:-python}"
status=0
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_dispatch.py tests/test_dispatch_gpu.py \
    2>&1 | tee "$OUT/dispatch_tests.log" || status=1
timeout 360 "$PY" -m moe_lab.dispatch.bench --out "$OUT" 2>&1 | tee "$OUT/dispatch_bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
