#!/usr/bin/env bash
# The prepared GPU check (issue 17 item 6; docs/gpu.md). From the repository root:
#
#   bash bench/gpu_check.sh --prepare   # HERE, before a GPU window (needs PyPI): wheels of the
#                                       # packages the GPU image lacks (arch, TA-Lib) into
#                                       # .cache/gpu-wheels, the built-in tiers as ready tier files
#                                       # into .cache/gpu-tiers (the fallback without arch)
#   bash bench/gpu_check.sh --smoke     # HERE: the same sections at tiny sizes on the CPU (< 3 min)
#   bash bench/gpu_check.sh             # ON THE GPU MACHINE: about 7-8 minutes, see below
#
# On the GPU machine (device tool `run`, carry [".cache/gpu-wheels", ".cache/gpu-tiers"],
# timeout_s 600): installs the carried wheels into /tmp/fembed-site (no network there), fembed
# itself with `pip install --no-deps --no-build-isolation -e .` (its other dependencies are in
# the image), then bench/bench_gpu.py: FE-06/FE-50 at K = 1, 8, 32 seeds, the grouped LF-P2
# priority, AE-19, and the projected time of `fembed run --all --seeds 5`. Each section writes
# its JSON at once to bench/results/gpu/ and to $OUT (what comes back); the whole run stays
# inside ~460 s plus set-up. Back here: copy the files into bench/results/gpu/ and run
# `python bench/render_benchmarks.py` (BENCHMARKS.md, section 7, with the card's name).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=gpu
case "${1:-}" in
  --smoke) mode=smoke; shift ;;
  --prepare) mode=prepare; shift ;;
  --help|-h) sed -n 2,20p "$0"; exit 0 ;;
esac

if [ "$mode" = prepare ]; then
  PY=${PY:-.venv/bin/python}
  set -e
  mkdir -p .cache/gpu-wheels .cache/gpu-tiers
  # Python 3.12 x86-64 wheels (the GPU image); their own needs (numpy, scipy, pandas,
  # statsmodels, packaging) are in the image.
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .cache/gpu-wheels "arch==$("$PY" -c 'import importlib.metadata as m; print(m.version("arch"))')" \
    "TA-Lib==$("$PY" -c 'import importlib.metadata as m; print(m.version("TA-Lib"))')"
  # The built-in tiers, built here, as ready tier files in the original's layout (--data DIR).
  tmp=$(mktemp -d)
  FEMBED_CACHE="$tmp" "$PY" -m fembed_jax.cli.main data build -q 2>/dev/null \
    || FEMBED_CACHE="$tmp" .venv/bin/fembed data build -q
  "$PY" - "$tmp" <<'EOF'
import json, shutil, sys, time
from pathlib import Path
from fembed_jax.data.config import DEFAULT_TIER_FILES
src, dst = Path(sys.argv[1]), Path(".cache/gpu-tiers")
made = {}
for tier, name in DEFAULT_TIER_FILES.items():
    found = sorted(src.rglob(f"{tier}-*.parquet"))
    shutil.copy(found[-1], dst / name)
    made[tier] = {"file": name, "from": found[-1].name, "bytes": (dst / name).stat().st_size}
(dst / "prepared.json").write_text(json.dumps({"made": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                                                "source": "fembed data build (built-in S&P 500, arch)",
                                                "tiers": made}, indent=1))
print("tiers:", ", ".join(f"{t} {v['bytes'] / 2**20:.1f} MB" for t, v in made.items()))
EOF
  rm -rf "$tmp"
  # parameter counts of the 183 models (the projection needs them; ~30 s to compute on 2 cores)
  "$PY" -c 'from fembed_jax.catalog import param_counts; from fembed_jax.registry import load_registry; param_counts(load_registry().experiments)'
  cp "${FEMBED_CACHE:-.cache}/param_counts.json" .cache/gpu-tiers/param_counts.json 2>/dev/null || true
  du -sh .cache/gpu-wheels .cache/gpu-tiers
  exit 0
fi

if [ "$mode" = smoke ]; then
  PY=${PY:-.venv/bin/python}
  exec "$PY" bench/bench_gpu.py --smoke "$@"
fi

# ---- on the GPU machine ----
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
log=${OUT:+$OUT/gpu_check.log}
log=${log:-/tmp/gpu_check.log}
{
  echo "gpu_check: $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
  t0=$(date +%s)
  if ls .cache/gpu-wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/fembed-site .cache/gpu-wheels/*.whl && export PYTHONPATH=/tmp/fembed-site${PYTHONPATH:+:$PYTHONPATH}
    echo "wheels: $(ls .cache/gpu-wheels | tr '\n' ' ')"
  else
    echo "wheels: none carried (.cache/gpu-wheels): arch/TA-Lib only if the image has them"
  fi
  if ! "$PY" -c 'import fembed_jax.cli.main' 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
      || echo "warning: pip install -e . failed (setuptools missing?)"
  fi
  "$PY" -m pip show jax jaxlib flax optax orbax-checkpoint arch ta-lib 2>/dev/null | grep -E '^(Name|Version)' | paste - - | tr '\n' ';'
  echo
  echo "set-up: $(( $(date +%s) - t0 )) s"
  "$PY" bench/bench_gpu.py "$@"
} 2>&1 | tee "$log"
