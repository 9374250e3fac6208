"""Benchmark: build the five feature tiers from the raw built-in data (no cache).

    python bench/bench_data_build.py [--repeats 3]

Times (median of --repeats): loading the raw S&P 500 + VIX from `arch`; each tier built on its own
from the raw frame; all five built in one pass (features computed once, as `fembed data build`
does), with the time spent in each tier's own feature families. Writes
bench/results/data_build.json. Target: all five tiers under 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402  (the machine block every result file shares)


def versions() -> dict:
    from fembed_jax.data import CODE_VERSION

    out = {"fembed-data": CODE_VERSION}
    for pkg in ("numpy", "pandas", "ta-lib", "arch", "scipy"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(HERE / "results" / "data_build.json"))
    args = parser.parse_args(argv)

    from fembed_jax.data import TIERS
    from fembed_jax.data.build import build_tier_frames
    from fembed_jax.data.sources import load_builtin

    load_s, single = [], {t: [] for t in TIERS}
    one_pass, per_family = [], {t: [] for t in TIERS}
    rows = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        src = load_builtin()
        load_s.append(time.perf_counter() - start)
        for tier in TIERS:
            start = time.perf_counter()
            frame = build_tier_frames(src.frame, (tier,), "bench")[tier]
            single[tier].append(time.perf_counter() - start)
            rows[tier] = [int(frame.shape[0]), int(frame.shape[1] - 6)]
        timings: dict[str, float] = {}
        start = time.perf_counter()
        build_tier_frames(src.frame, TIERS, "bench", timings)
        one_pass.append(time.perf_counter() - start)
        for tier in TIERS:
            per_family[tier].append(timings[tier])

    med = statistics.median
    result = {
        "benchmark": "build all five feature tiers from raw built-in data (arch S&P 500 1999-2018, 5,031 rows)",
        "machine": benchlib.machine(),
        "versions": versions(),
        "repeats": args.repeats,
        "statistic": "median",
        "load_raw_seconds": round(med(load_s), 4),
        "seconds_per_tier_standalone": {t: round(med(v), 4) for t, v in single.items()},
        "seconds_per_tier_own_families": {t: round(med(v), 4) for t, v in per_family.items()},
        "all_tiers_one_pass_seconds": round(med(one_pass), 4),
        "total_seconds": round(med(load_s) + med(one_pass), 4),
        "rows_and_features": rows,
        "target_seconds": 60,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
