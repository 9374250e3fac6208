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
from fembed_jax.report.collect import Entry, Reference, ReportData, collect, volatility_reference
from fembed_jax.report.markdown import SECTIONS, render

__all__ = ["Entry", "Reference", "ReportData", "ReportFiles", "SECTIONS", "collect", "render",
           "volatility_reference", "write_report"]


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    csv: Path
    parquet: Path
    plots: tuple[Path, ...]
    data: ReportData


def write_report(outputs_dir: str | os.PathLike[str], out: str | os.PathLike[str], registry: Any = None, *,
                 data_config: Any = None, reference: bool = True, plots: bool = True, top: int = 15,
                 n_boot: int = 2000, seed: int = 0, block_length: int = 1) -> ReportFiles:
    """Collect, render and write everything; returns the paths written."""
    from fembed_jax.report.tables import results_frame
    from fembed_jax.results_io import atomic_write_text

    out = Path(out)
    ref = (volatility_reference(data_config, n_boot=n_boot, seed=seed, block_length=block_length)
           if reference else None)
    data = collect(outputs_dir, registry, n_boot=n_boot, seed=seed, block_length=block_length, reference=ref)
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
