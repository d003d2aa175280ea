#!/usr/bin/env bash
# One prepared GPU sitting (a lent device machine): the device tests on CUDA, then mujoco_delay
# runs in parallel on the GPU until a time limit. Usage: bash benchmarks/gpu_session.sh OUT_DIR SECONDS
# Expects PYTHONPATH to hold lagless's src/ and its dependencies (gymnasium, mujoco).
set -u
OUT=${1:-/tmp/gpu-out}; LIMIT=${2:-420}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1; unset MUJOCO_GL
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)" | tee -a "$OUT/device.txt"
[ "${SKIP_TESTS:-0}" = 1 ] || timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_device.py tests/test_sequence_replay.py 2>&1 | tail -15 | tee "$OUT/pytest.txt"
timeout "$LIMIT" python3 benchmarks/mujoco_delay.py --env HalfCheetah Hopper --seeds 1 --steps 100000 \
  --jobs 8 --device cuda --out "$OUT/mujoco_delay.json" --runs-root /tmp/mujoco_runs > "$OUT/mujoco_delay.log" 2>&1
echo "mujoco_delay exit $?" >> "$OUT/mujoco_delay.log"
# runs the limit cut short: how far they got, from their metrics (partial; not benchmark records)
python3 - "$OUT" <<'PY' > "$OUT/partial.txt" 2>&1
import sys, glob, numpy as np
from lagless.runs import read_metrics
for d in sorted(glob.glob("/tmp/mujoco_runs/*")):
    try:
        m = read_metrics(d + "/metrics.csv")
    except Exception as e:
        print(d, "no metrics", e); continue
    r = m["charts/recent_return"]; u = m.get("charts/updates_per_s", np.array([np.nan]))
    print(d.split("/")[-1], "step", int(m["step"][-1]), "recent_return %.1f" % r[-1], "updates/s %.0f" % np.nanmean(u))
PY
cat "$OUT/partial.txt"; tail -3 "$OUT/mujoco_delay.log"
