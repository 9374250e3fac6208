"""`fembed report`: the experiment tracker regenerated from the run store.

    from fembed_jax.report import write_report
    files = write_report("outputs", "outputs/report/experiment_tracker.md", registry)

Writes the markdown document, all results as CSV and parquet, and PNG plots beside it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from fembed_jax.atomic import atomic_write
from fembed_jax.report.baselines import Reference, logistic_baseline, volatility_reference
from fembed_jax.report.collect import Entry, ReportData, collect
from fembed_jax.report.markdown import SECTIONS, render

__all__ = ["Entry", "Reference", "ReportData", "ReportFiles", "SECTIONS", "collect", "logistic_baselines",
           "render", "volatility_reference", "write_report"]


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    csv: Path
    parquet: Path
    plots: tuple[Path, ...]
    data: ReportData


def logistic_baselines(data: ReportData, data_config: Any) -> dict[str, Reference]:
    """The logistic baseline of every tier a comparable result with predictions ran on."""
    tiers = sorted({e.tier for e in data.comparable if e.predictions is not None and e.tier})
    return {tier: logistic_baseline(data_config, tier, n_boot=data.n_boot, seed=data.seed,
                                    block_length=data.block_length) for tier in tiers}


def fold_references(data: ReportData, data_config: Any) -> dict[int, Reference]:
    """The volatility reference on each walk-forward fold k > 1 a result ran on (report.folds)."""
    from fembed_jax.data.config import DataConfig
    from fembed_jax.folds import fold_data_config

    ks = sorted({e.fold for e in data.fembed if e.fold > 1})
    return {k: volatility_reference(fold_data_config(data_config or DataConfig(), k), n_boot=data.n_boot,
                                    seed=data.seed, block_length=data.block_length) for k in ks}


def write_report(outputs_dir: str | os.PathLike[str], out: str | os.PathLike[str], registry: Any = None, *,
                 data_config: Any = None, reference: bool = True, plots: bool = True, top: int = 15,
                 n_boot: int = 2000, seed: int = 0, block_length: int = 1,
                 include_quick: bool = False) -> ReportFiles:
    """Collect, render and write everything; returns the paths written. ``reference`` False
    also skips the logistic baselines (both load data)."""
    from fembed_jax.report.frame import results_frame
    from fembed_jax.results_io import atomic_write_text

    out = Path(out)
    ref = (volatility_reference(data_config, n_boot=n_boot, seed=seed, block_length=block_length)
           if reference else None)
    data = collect(outputs_dir, registry, n_boot=n_boot, seed=seed, block_length=block_length, reference=ref,
                   include_quick=include_quick)
    if reference:
        data.baselines = logistic_baselines(data, data_config)
        data.fold_references = fold_references(data, data_config)
    folder = out.parent
    stem = out.stem
    csv_path, parquet_path = folder / f"{stem}_results.csv", folder / f"{stem}_results.parquet"
    frame = results_frame(data)
    atomic_write(csv_path, lambda fh: frame.to_csv(fh, index=False))
    atomic_write(parquet_path, lambda fh: frame.to_parquet(fh, index=False))
    plot_paths: tuple[Path, ...] = ()
    rel_plots = None
    if plots:
        from fembed_jax.report.plots import write_plots

        plot_paths = tuple(write_plots(data, folder / f"{stem}_plots"))
        rel_plots = {p.stem: os.path.relpath(p, folder) for p in plot_paths}
    text = render(data, top=top, plots=rel_plots,
                  files={"csv": csv_path.name, "parquet": parquet_path.name})
    atomic_write_text(out, text)
    return ReportFiles(out, csv_path, parquet_path, plot_paths, data)
