#!/usr/bin/env bash
# GPU checks of xsgpu on a machine with an NVIDIA GPU and torch (+ CuPy): synth on CuPy, inference
# throughput, metrics on CuPy, a dask-cuda cluster where dask-cuda is importable. Prints JSON lines; a
# missing piece gives a line with "skipped": "<reason>". No install needed: the repo goes on PYTHONPATH.
#   benchmarks/gpu_check.sh [--quick] [--size 256] [--archs resnet18,resnet50] [--only synth,inference]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3 || command -v python)"; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"
