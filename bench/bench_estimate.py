"""Estimates before work (issue 17 item 1) against what a real run then does, on this machine.

For each case (FE-06 alone; two LF experiments that share one program), in a fresh FEMBED_CACHE
and fresh outputs: `fembed run ... --dry-run --json` (measures the shape: a few timed steps),
then the same run for real (cut with --epochs and --seeds). Compared: the estimated seconds
(compile + epochs x (steps x s/step + validation + save) + final scoring) with the run store's
own times (claim -> last epoch recorded, per experiment and per group), and the estimated
checkpoint bytes after the run (`--keep best`: selected/ only) with the bytes on disk, and the
peak (one epoch: the step plus selected/) with the "checkpoints X -> Y" the run printed.
Results: bench/results/estimate.json.

    .venv/bin/python bench/bench_estimate.py            (about 3-5 minutes on a 2-core CPU)
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

CASES = [
    {"name": "FE-06", "ids": ["FE-06"], "seeds": 2, "epochs": 2},
    {"name": "LF-61+LF-62 (one program)", "ids": ["LF-61", "LF-62"], "seeds": 1, "epochs": 1},
]


def fembed(*args: str, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "fembed"), *args], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    return done, time.monotonic() - t0


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def run_case(case: dict, work: Path) -> dict:
    env = {**os.environ, "FEMBED_CACHE": str(work / "cache"), "COLUMNS": "200"}
    common = [a for i in case["ids"] for a in ("--exp-id", i)] + [
        "--seeds", str(case["seeds"]), "--epochs", str(case["epochs"]),
        "--outputs", str(work / "outputs"), "--checkpoints", str(work / "checkpoints")]
    dry, dry_s = fembed("run", *common, "--dry-run", "--json", env=env)
    if dry.returncode:
        raise SystemExit(f"dry run failed: {dry.stderr[-2000:]}")
    plan = json.loads(dry.stdout)
    cached, cached_s = fembed("run", *common, "--dry-run", "--json", env=env)  # from the cache now
    real, real_s = fembed("run", *common, env=env)
    if real.returncode:
        raise SystemExit(f"run failed: {real.stderr[-2000:]}")
    db = sqlite3.connect(work / "outputs" / "fembed.db")
    db.row_factory = sqlite3.Row
    rows = []
    freed = {m.group(1): (_bytes(m.group(2)), _bytes(m.group(3)))
             for m in re.finditer(r"(\S+): checkpoints ([\d.]+ \w?B) → ([\d.]+ \w?B)", real.stdout)}
    for exp in plan["experiments"]:
        exp_id, est = exp["exp_id"], exp["estimate"]
        row = db.execute("SELECT started_at FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
        epochs = [r[0] for r in db.execute(
            "SELECT MAX(recorded_at) FROM epochs WHERE exp_id = ? GROUP BY epoch ORDER BY epoch", (exp_id,))]
        from fembed_jax.checkpoint import tree_bytes

        after = tree_bytes(work / "checkpoints" / exp_id)
        rows.append({
            "exp_id": exp_id, "group": exp["group"], "source": est["source"],
            "estimate_seconds": est["seconds"], "estimate_compile_seconds": est["compile_seconds"],
            "estimate_seconds_per_epoch": est["seconds_per_epoch"], "step_seconds": est["step_seconds"],
            "steps_per_epoch": est["steps_per_epoch"], "members": est["members"],
            "flops_per_step": est["flops_per_step"],
            "actual_claim_to_last_epoch_s": (epochs[-1] - row["started_at"]) if epochs else None,
            "actual_epoch_ends_s": [e - row["started_at"] for e in epochs],
            "estimate_checkpoint_peak_bytes": est["checkpoint_peak_bytes"],
            "actual_checkpoint_before_free_bytes": freed.get(exp_id, (None, None))[0],
            "estimate_checkpoint_after_bytes": est["checkpoint_after_bytes"],
            "actual_checkpoint_after_bytes": after,
            "estimate_peak_memory_bytes": est["peak_memory_bytes"],
        })
    db.close()
    groups = {}
    for r in rows:
        g = groups.setdefault(r["group"], {"estimate_seconds": 0.0, "actual_seconds": 0.0})
        g["estimate_seconds"] += r["estimate_seconds"] or 0.0
        g["actual_seconds"] = max(g["actual_seconds"], r["actual_claim_to_last_epoch_s"] or 0.0)
    for g in groups.values():
        g["ratio_estimate_to_actual"] = g["estimate_seconds"] / g["actual_seconds"] if g["actual_seconds"] else None
    header = next((line for line in real.stdout.splitlines() if line.startswith("estimate:")), None)
    return {"case": case["name"], "args": common[: -4], "dry_run_seconds": dry_s,
            "cached_dry_run_seconds": cached_s, "cached_source": sorted(
                {e["estimate"]["source"] for e in json.loads(cached.stdout)["experiments"]}),
            "run_process_seconds": real_s, "run_header_estimate": header,
            "total": plan["total"], "experiments": rows, "groups": groups}


def main() -> int:
    import benchlib

    out = {"what": "fembed run --dry-run estimates vs the run that follows (fresh cache per case)",
           "machine": benchlib.machine(), "versions": benchlib.versions(torch=False),
           "load_average_start": os.getloadavg(), "cases": []}
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="fembed-bench-estimate-") as tmp:
            result = run_case(case, Path(tmp))
        out["cases"].append(result)
        for name, g in result["groups"].items():
            print(f"{result['case']}: group {name} estimate {g['estimate_seconds']:.1f} s, actual "
                  f"{g['actual_seconds']:.1f} s (ratio {g['ratio_estimate_to_actual']:.2f}); "
                  f"dry run {result['dry_run_seconds']:.1f} s, cached {result['cached_dry_run_seconds']:.1f} s")
        for r in result["experiments"]:
            print(f"  {r['exp_id']}: disk after est {r['estimate_checkpoint_after_bytes']:,} actual "
                  f"{r['actual_checkpoint_after_bytes']:,}; peak est {r['estimate_checkpoint_peak_bytes']:,} "
                  f"actual before free {r['actual_checkpoint_before_free_bytes']}")
    out["load_average_end"] = os.getloadavg()
    path = ROOT / "bench" / "results" / "estimate.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
