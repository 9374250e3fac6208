"""Shared fixtures."""

from __future__ import annotations

import pytest

from helpers import synthetic_dataset


@pytest.fixture
def tiny_data():
    from fembed_jax.train.engine import DeviceData

    return DeviceData.from_dataset(synthetic_dataset())
