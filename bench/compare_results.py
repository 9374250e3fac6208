"""Are two runs' results the same? Compares results.json and val_predictions.npz of every
experiment two outputs folders share (issue 15: "results of a run before and after are identical").

    python bench/compare_results.py BEFORE/outputs AFTER/outputs [--out bench/results/redesign_ab.json]

Compared: every number under the record's metric keys (per-seed and aggregate val metrics, the
per-epoch history, best epochs, epochs run, seeds, parameter count) and the saved validation
probabilities. Bookkeeping that must differ between versions (hashes, versions, timestamps,
durations, new record fields) is not compared. Exit 0 when every compared value is identical.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

COMPARED = ("val_metrics", "val_metrics_per_seed", "val_metrics_aggregate", "training", "history",
            "best_epoch", "seeds", "parameters", "splits")
# Per-record keys that time the run rather than describe its result.
TIMING = {"seconds", "training_time_min", "time_s", "elapsed_s", "recorded_at"}


def leaves(value, path: str = ""):
    """(path, number-or-string) for every leaf of a JSON value, timing keys left out."""
    if isinstance(value, dict):
        for key in sorted(value):
            if key not in TIMING:
                yield from leaves(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def differences(a: dict, b: dict) -> tuple[int, list[str], list[str], float]:
    """(leaves both records have, paths whose values differ, paths only one has, largest absolute
    numeric difference). A field only one version writes (e.g. history's "trained" mask, added by
    the redesign) is listed, not counted as a difference of results."""
    left, right = dict(leaves({k: a.get(k) for k in COMPARED})), dict(leaves({k: b.get(k) for k in COMPARED}))
    differ, worst = [], 0.0
    both = sorted(set(left) & set(right))
    for path in both:
        x, y = left[path], right[path]
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
            if math.isnan(x) and math.isnan(y):
                continue
            worst = max(worst, abs(float(x) - float(y)))
        if x != y:
            differ.append(f"{path}: {x!r} vs {y!r}")
    return len(both), differ, sorted(set(left) ^ set(right)), worst


def compare(before: Path, after: Path) -> dict:
    out = {}
    for results in sorted(before.glob("*/results.json")):
        exp_id = results.parent.name
        other = after / exp_id / "results.json"
        if not other.exists():
            continue
        a, b = json.loads(results.read_text()), json.loads(other.read_text())
        n, differ, one_sided, worst = differences(a, b)
        row = {"leaves_compared": n, "leaves_different": len(differ), "max_abs_difference": worst,
               "first_differences": differ[:10], "only_in_one": one_sided[:20],
               "n_only_in_one": len(one_sided)}
        pa, pb = results.parent / "val_predictions.npz", other.parent / "val_predictions.npz"
        if pa.exists() and pb.exists():
            with np.load(pa) as x, np.load(pb) as y:
                row["val_probs_identical"] = bool(np.array_equal(x["probs"], y["probs"], equal_nan=True))
                row["val_probs_max_abs_difference"] = float(np.nanmax(np.abs(x["probs"] - y["probs"])))
        out[exp_id] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here too")
    parser.add_argument("--note", default="", help="what the two runs were (recorded in --out)")
    args = parser.parse_args(argv)
    rows = compare(args.before, args.after)
    if not rows:
        print(f"no experiment has results in both {args.before} and {args.after}", file=sys.stderr)
        return 2
    identical = all(r["leaves_different"] == 0 and r.get("val_probs_identical", True) for r in rows.values())
    for exp_id, r in rows.items():
        print(f"{exp_id}: {r['leaves_compared']} values, {r['leaves_different']} differ "
              f"(max |diff| {r['max_abs_difference']:.3g}); val probs identical: {r.get('val_probs_identical')}; "
              f"{r['n_only_in_one']} fields only one version writes")
        for line in r["first_differences"]:
            print(f"  {line}")
    print("identical" if identical else "DIFFERENT")
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "redesign_ab", "note": args.note, "identical": identical,
                                        "experiments": rows}, indent=1) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
