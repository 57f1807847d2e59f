#!/usr/bin/env bash
# The GPU suite in one command, inside GPU_SUITE_BUDGET_S (default 480 s = 8 minutes) all told: set up .venv-gpu
# (`make setup-gpu`, nothing to do when it is up to date), then benchmarks/gpu_suite.py with whatever time the
# setup left. Writes gpu_suite.md (GPU_SUITE_OUT) and prints it; extra arguments go to gpu_suite.py.
#
#   scripts/gpu_suite.sh                                  # or: make gpu-suite
#   GPU_PY=/opt/env/bin/python scripts/gpu_suite.sh       # an environment that already has CUDA torch + litplug
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${GPU_SUITE_BUDGET_S:-480}
margin=15  # the suite's own start-up and the final write
start=$SECONDS
if [[ -z "${GPU_PY:-}" ]]; then
    "${MAKE:-make}" setup-gpu
    GPU_PY=.venv-gpu/bin/python
fi
left=$((budget - (SECONDS - start) - margin))
echo "gpu_suite.sh: setup took $((SECONDS - start)) s; ${left} s left for the measurements" >&2
if ((left < 60)); then
    echo "gpu_suite.sh: warning: under 60 s left; variants will be reported as not run" >&2
    left=$((left > 0 ? left : 0))
fi
exec "$GPU_PY" benchmarks/gpu_suite.py --budget-s "$left" --out "${GPU_SUITE_OUT:-gpu_suite.md}" "$@"
