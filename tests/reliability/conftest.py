"""Fixtures of the reliability suite (see RELIABILITY.md).

Tests marked ``soak`` are the long part of the suite (every kill point, real full disks, many
hypothesis examples): they run only with FEMBED_RELIABILITY_FULL=1, e.g.

    FEMBED_RELIABILITY_FULL=1 FEMBED_RELIABILITY_REPORT=/tmp/rel.jsonl \\
        .venv/bin/python -m pytest tests/reliability -q

FEMBED_RELIABILITY_REPORT collects one JSON line per fault tried (the data of RELIABILITY.md).
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from reliability_harness import fembed, fembed_inprocess, left_behind, make_project, outcome

FULL = os.environ.get("FEMBED_RELIABILITY_FULL") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "soak: long reliability runs, only with FEMBED_RELIABILITY_FULL=1 (see RELIABILITY.md)")


def pytest_collection_modifyitems(config, items):
    if FULL:
        return
    skip = pytest.mark.skip(reason="soak test: set FEMBED_RELIABILITY_FULL=1 (see RELIABILITY.md)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fembed_cache(tmp_path_factory) -> pathlib.Path:
    """The session's data and compilation cache (tests/conftest.py sets one up), shared with
    the `fembed` subprocesses, which inherit FEMBED_CACHE."""
    cache = pathlib.Path(os.environ.get("FEMBED_CACHE") or tmp_path_factory.getbasetemp() / "fembed-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEMBED_CACHE", str(cache))
        yield cache


@pytest.fixture(autouse=True)
def _cache_for_every_test(fembed_cache, monkeypatch):
    monkeypatch.setenv("FEMBED_CACHE", str(fembed_cache))
    monkeypatch.delenv("FEMBED_FAULT", raising=False)


@pytest.fixture(scope="session")
def reference(tmp_path_factory, fembed_cache) -> dict:
    """The outcome of one uninterrupted run of the tiny project: what every faulted run must end with.

    Run as a `fembed` process, which also fills the compilation cache for the later `fembed`
    processes (their programs are cached apart from this pytest process's own)."""
    root = tmp_path_factory.mktemp("reference")
    make_project(root)
    done = fembed(root, "run", "--all")
    assert done.returncode == 0, done.stdout + done.stderr
    result = outcome(root)
    result["root"] = root
    return result


@pytest.fixture(scope="session")
def interrupted(tmp_path_factory, fembed_cache, reference) -> pathlib.Path:
    """A project whose run was stopped by Ctrl-C after TT-01's epoch 1: TT-01 pending with
    checkpoints of epochs 0 and 1, TT-02 untouched. Tests copy it (`copy_of`)."""
    from fembed_jax import faults

    root = tmp_path_factory.mktemp("interrupted")
    make_project(root)
    faults.arm("fit.epoch_done:2:sigint")
    try:
        code, out, err = fembed_inprocess(root, "run", "--all")
    finally:
        faults.disarm()
    assert code == 130, out + err
    state = left_behind(root)
    assert state["steps"] == {"TT-01": ["0", "1"]} and state["states"] == {"TT-01": "pending", "TT-02": "pending"}
    return root


@pytest.fixture
def copy_of(tmp_path):
    """copy_of(root) -> a private copy of a prepared project (its registry, outputs, checkpoints)."""

    def copy(root: pathlib.Path) -> pathlib.Path:
        target = tmp_path / "project"
        shutil.copytree(root, target, ignore=shutil.ignore_patterns("*.lock"))
        return target

    return copy
