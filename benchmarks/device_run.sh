#!/usr/bin/env bash
# One sitting on a machine with a CUDA GPU: the CuPy tests, the GPU benchmarks and the recipes
# on the GPU, each recipe on seeds 0, 1 and 2. It expects CuPy, PyTorch and pytest to be
# installed; packages the machine lacks can come as wheels in .whl/ (array-api-compat and
# array-api-strict, for instance), installed into /tmp/site without touching the system.
# Where PyTorch sees the GPU, and JAX runs on it (jax[cuda12]), the benchmarks add our engine on
# each, eager and compiled (CUDA graphs for PyTorch), and the keras recipe runs compiled on each.
# Everything it prints is also kept in $OUT (default: device-out/).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8" || echo "")

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import cupy, numpy; print('CuPy', cupy.__version__, 'NumPy', numpy.__version__)" 2>&1 | tee -a "$out/gpu.txt"
python3 -c "import torch; print('PyTorch', torch.__version__, 'CUDA', torch.cuda.is_available())" 2>&1 | tee -a "$out/gpu.txt"
python3 -c "import jax; print('JAX', jax.__version__, 'on', jax.default_backend())" 2>&1 | tee -a "$out/gpu.txt"

# shellcheck disable=SC2086
python3 -m pytest -q -p no:cacheprovider $workers tests -k "cupy or gpu" 2>&1 | tee "$out/tests.log" | tail -15
python3 -m pytest -q -p no:cacheprovider benchmarks --benchmark-only -k gpu --benchmark-json "$out/bench.json" \
    > "$out/bench.log" 2>&1
python3 -m benchmarks.report "$out/bench.json" 2>&1 | tee "$out/bench.md"

for recipe in gpu fast keras; do
    for seed in 0 1 2; do
        line=$(python3 -m mnist_xp.train --device gpu --recipe "$recipe" --seed "$seed" 2>&1 | grep "test accuracy")
        echo "$recipe seed $seed: $line" | tee -a "$out/recipes.txt"
    done
done
line=$(python3 -m mnist_xp.train --device gpu --recipe seed 2>&1 | grep "test accuracy")
echo "seed: $line" | tee -a "$out/recipes.txt"
for library in jax torch; do
    line=$(python3 -m mnist_xp.train --backend "$library" --device gpu --compile --recipe keras 2>&1 | grep "test accuracy")
    echo "keras on $library, compiled: $line" | tee -a "$out/recipes.txt"
done
