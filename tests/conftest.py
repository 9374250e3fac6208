"""Shared fixtures and session set-up."""

from __future__ import annotations

import os
import tempfile

import pytest

from helpers import synthetic_dataset


def pytest_configure(config):
    """One cache folder for the whole session (built data tiers, parameter counts, compiled
    programs), outside the repository: tests that build the same program compile it once."""
    if "FEMBED_CACHE" not in os.environ:
        os.environ["FEMBED_CACHE"] = tempfile.mkdtemp(prefix="fembed-test-cache-")
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(os.environ["FEMBED_CACHE"], "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture
def shared_cache(tmp_path_factory, monkeypatch):
    """FEMBED_CACHE for end-to-end runs: one folder per session (data tiers, parameter counts,
    compiled programs), as a user's .cache/ would be."""
    cache = tmp_path_factory.getbasetemp() / "fembed-cache"
    monkeypatch.setenv("FEMBED_CACHE", str(cache))
    return cache


@pytest.fixture
def tiny_data():
    from fembed_jax.train.engine import DeviceData

    return DeviceData.from_dataset(synthetic_dataset())
