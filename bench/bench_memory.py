"""Benchmark: peak memory (whole process) of one training epoch per model, fresh process each.

    python bench/bench_memory.py [--repeats 1] [--only FE-06,FE-17]

Peak RSS = resource.getrusage(RUSAGE_SELF).ru_maxrss at the end of a worker process that
imported fembed, loaded the built-in tier, compiled and ran init, trained one epoch and ran one
validation pass: the whole process, compilation included. FE-17 (51M parameters) and AE-19
would need many minutes per epoch on 2 cores, so their epoch is cut (FE-17: 3 batches of 128
windows, AE-19: 1; validation cut to as many windows): lax.scan carries fixed-size state, so
the peak comes from the first step; for FE-06 a 3-batch cut read ~5% low (868 vs 911 MB for the
full epoch: permutation and full-split buffers), so the light models run the full epoch. Also recorded: RSS
before the first compilation (imports + data) and the torch reference's peak for FE-06 / FE-50
(training only). Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import run_worker, spread  # noqa: E402

# (framework, experiment, seeds, batches): None = the full epoch; FE-17 (~15 s a step) and AE-19
# (~2-3 min a step on a busy 2-core machine: 4-head attention over 500 feature tokens at each of
# the 128 x 80 time steps) train a cut epoch. The light models also at the registry's 5 seeds.
CASES = [("jax", "FE-06", 1, None), ("jax", "FE-06", 5, None), ("jax", "FE-50", 1, None),
         ("jax", "FE-50", 5, None), ("jax", "FE-17", 1, 3), ("jax", "AE-19", 1, 1),
         ("torch", "FE-06", 1, None), ("torch", "FE-50", 1, None)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per case")
    parser.add_argument("--only", default="", help="comma list of experiment ids")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    parser.add_argument("--results", default="", help="results folder (default bench/results)")
    args = parser.parse_args(argv)
    if args.results:
        benchlib.RESULTS = Path(args.results)
    only = {e for e in args.only.split(",") if e}
    started = time.perf_counter()
    result = benchlib.header("peak RSS of one training epoch (whole process: imports, data, compile, "
                             "init, train, one validation pass)", args.repeats)
    rows = []
    for framework, exp, seeds, batches in CASES:
        if only and exp not in only:
            continue
        runs = []
        for r in range(args.repeats):
            print(f"[{time.strftime('%H:%M:%S')}] memory: {exp} {framework} K={seeds} ({r + 1}/{args.repeats})",
                  flush=True)
            spec = {"kind": framework, "exp": exp, "data": "builtin", "seeds": seeds, "warmup": 1,
                    "repeats": 0, "evaluate": True, "max_windows": batches and batches * 128}
            runs.append(run_worker(spec, timeout=args.timeout, scratch_cache=True))
        good = [r for r in runs if "error" not in r]
        row = {"framework": "fembed" if framework == "jax" else "torch", "exp": exp, "seeds": seeds}
        if good:
            row.update(params=good[0]["params"], train_windows=good[0]["train_windows"],
                       peak_rss_mb=spread([r["peak_rss_mb"] for r in good], 1),
                       rss_before_compile_mb=spread([r.get("rss_before_compile_mb", r.get("rss_before_model_mb"))
                                                     for r in good], 1),
                       first_epoch_seconds=spread([r["first_epoch_seconds"] for r in good], 2),
                       worker_seconds=spread([r["worker_seconds"] for r in good], 1))
        errors = [r for r in runs if "error" in r]
        if errors:
            row["errors"] = errors
        rows.append(row)
    result["rows"] = rows
    benchlib.write("memory.json", result, started)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
