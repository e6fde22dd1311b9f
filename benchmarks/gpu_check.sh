#!/usr/bin/env bash
# The GPU check, for a machine with a CUDA device (about 2-4 minutes; nothing here needs the network):
#   1. the GPU tests: every op and network on the GPU against the CPU (tests/test_gpu.py and any test marked `gpu`),
#      plus the kernel checks of tests/test_cuda_kernels.py (nvcc/NVRTC compile, host emulation);
#   2. one LeNet epoch on the GPU (Fashion-MNIST must be on the machine: MINICNN_DATA or --data-dir), with its time;
#   3. the training-step throughput of every chapter network on the GPU, and of PyTorch's twins if it is installed.
# Usage: benchmarks/gpu_check.sh        (PYTHON=/path/to/python to choose the interpreter that has CuPy)
# Exit status: 0 when every step passed or was skipped for a stated reason, 1 when one failed, 2 without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export MINICNN_OFFLINE=1  # never wait on a download mirror
status=0
summary=()

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
record() { summary+=("$1"); [ "$2" = ok ] || [ "$2" = skipped ] || status=1; }

echo "== environment"
"$PY" - <<'PY' || { echo "gpu_check: no usable GPU (see above)"; exit 2; }
import sys
import numpy
print("python", sys.version.split()[0], "| numpy", numpy.__version__)
try:
    import cupy
except ImportError:
    sys.exit("CuPy is not installed: pip install minicnn[gpu] (cupy-cuda12x) or cupy-cuda13x")
print("cupy", cupy.__version__, "| CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())
import minicnn as mc
try:
    mc.gpu(0).backend  # a one-line DeviceError if the device or the kernels do not work
except mc.DeviceError as exc:
    sys.exit(str(exc))
props = cupy.cuda.runtime.getDeviceProperties(0)
print("device 0:", props["name"].decode(), f"({props['totalGlobalMem'] / 2**30:.0f} GiB)")
PY

echo "== 1/3 GPU tests"
start=$(now)
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda_kernels.py tests/test_gpu.py
r1=$?
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests --ignore=tests/test_gpu.py --ignore=tests/test_cuda_kernels.py
r2=$?
[ "$r2" -eq 5 ] && r2=0  # 5: no other test is marked gpu
if [ "$r1" -eq 0 ] && [ "$r2" -eq 0 ]; then record "GPU tests: passed in $(elapsed "$start") s" ok
else record "GPU tests: FAILED (pytest exit $r1/$r2) after $(elapsed "$start") s" failed; fi

echo "== 2/3 one LeNet epoch on the GPU"
start=$(now)
log=$(mktemp)
"$PY" -m minicnn train lenet --device gpu --epochs 1 --seed 0 --no-progress 2>&1 | tee "$log"
r=${PIPESTATUS[0]}
if [ "$r" -eq 0 ]; then
  record "LeNet epoch on the GPU: $(elapsed "$start") s wall, including start-up and data loading; $(grep -E '^epoch' "$log" | tail -1)" ok
elif grep -qi "fashion-mnist" "$log"; then
  record "LeNet epoch: skipped, Fashion-MNIST not found on this machine (set MINICNN_DATA)" skipped
else
  record "LeNet epoch: FAILED (exit $r)" failed
fi
rm -f "$log"

echo "== 3/3 training-step throughput"
if "$PY" benchmarks/gpu_throughput.py; then record "throughput: see the table above" ok
else record "throughput: FAILED" failed; fi

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$status"
