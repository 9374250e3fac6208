"""A run store filled by a real tiny run, for the TUI's Pilot and snapshot tests.

The session fixture writes a six-experiment registry, trains two tiny experiments with the real
queue runner (fembed_jax.train.local.run_queue) on a synthetic 20-feature dataset, lets a third
fail in the runner (its tier's data has the wrong width), and then, through the store API, puts a
fourth in "running" with two recorded epochs, leaves a fifth pending, and stores a legacy result
for the sixth, which stays "not queued". The TUI opens it read-only.

Cost: on a busy 2-core machine the fixture takes ~40 s the first time (compiling two tiny
models); the JAX persistent compilation cache (runtime.configure, .cache/jax) brings later
sessions down to ~10 s.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

import pytest

TESTS = pathlib.Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import synthetic_dataset  # noqa: E402

REGISTRY_TOML = """\
[defaults]
d_model = 16
n_layers = 1
n_heads = 2
d_ff = 32
context_length = 32
patch_length = 16
stride = 8
batch_size = 32
epochs = 2
seeds = 2
patience = 15

[tiers.a20]
features = 20

[tiers.a50]
features = 50

[data]
source = "builtin"

[[experiments]]
id = "LF-01"
priority = "LF-P8"
tier = "a20"
d_embed = 8
loss = "bce"
description = "tiny BCE baseline with a linear embedding"

[[experiments]]
id = "LF-02"
priority = "LF-P8"
tier = "a20"
d_embed = 8
loss = "focal"
loss_params = { gamma = 2.0, alpha = 0.25 }
description = "tiny focal loss"

[[experiments]]
id = "LF-03"
priority = "LF-P8"
tier = "a50"
d_embed = 8
loss = "bce"
description = "fails: the synthetic data has 20 features, tier a50 says 50"

[[experiments]]
id = "LF-04"
priority = "LF-P9"
tier = "a20"
d_embed = 8
loss = "labelsmoothing"
loss_params = { epsilon = 0.1 }
epochs = 10
description = "left running by the fixture (two epochs recorded)"

[[experiments]]
id = "LF-05"
priority = "LF-P9"
tier = "a20"
loss = "bce"
description = "left pending"

[[experiments]]
id = "AE-01"
priority = "AE-P1"
tier = "a20"
d_embed = 8
embedding = "progressive"
embedding_params = { num_layers = 2 }
description = "never queued; has a legacy result"
"""

RUN_IDS = ("LF-01", "LF-02", "LF-03")
OWNER = "testhost:4242:cafe0001"
# Two recorded epochs of the running experiment: (epoch, seed, train_loss, val_loss, val_auc, active)
RUNNING_EPOCHS = ((0, 0, 0.71, 0.69, 0.52, True), (0, 1, 0.70, 0.68, 0.55, True),
                  (1, 0, 0.66, 0.67, 0.58, True), (1, 1, 0.64, 0.69, 0.54, False))


@dataclasses.dataclass(frozen=True)
class FilledStore:
    registry_path: pathlib.Path
    outputs: pathlib.Path
    store_path: pathlib.Path
    # When the fixture finished: LF-04's heartbeat is fresh then. A test app's clock is frozen
    # here, or LF-04 would read "stalled" 30 s later and "interrupted" after 120 s
    # (fembed_jax.liveness), depending on how long the tests before it took.
    now: float


def _dataset(*_args, **_kwargs):
    """synthetic_dataset with the attributes the runner reads from a real Dataset."""
    data = synthetic_dataset(features=20)
    data.tier = "a20"
    data.source_id = "synthetic:tui-tests"
    data.feature_names = tuple(f"f{i}" for i in range(20))
    data.split_info = lambda: {split: {"windows": int(len(starts))} for split, starts in data.starts.items()}
    return data


def _legacy_record(exp_id: str) -> dict:
    """A result of the original system (spec §6.2 fields; one seed, no per-seed metrics)."""
    return {
        "exp_id": exp_id, "priority": "AE-P1", "description": "legacy record", "tier": "a20",
        "num_features": 20, "d_embed": 8,
        "parameters": {"estimated": 20_000, "actual": 20_961},
        "training": {"training_time_min": 0.5, "stopped_early": True},
        "val_metrics": {"precision": 0.4, "recall": 0.125, "auc": 0.612, "n_positive_preds": 20,
                        "pred_range": 0.8, "n_samples": 78},
        "timestamp": "2026-02-07T00:47:14",
    }


@pytest.fixture(scope="session")
def filled_store(tmp_path_factory) -> FilledStore:
    from fembed_jax import runtime

    runtime.configure("auto")  # only turns on the persistent compilation cache (.cache/jax)
    from fembed_jax.data.config import DataConfig
    from fembed_jax.registry import load_registry
    from fembed_jax.store import RunStore
    from fembed_jax.train import group, local, plan as planning

    root = tmp_path_factory.mktemp("tui-store")
    registry_path = root / "registry" / "experiments.toml"
    registry_path.parent.mkdir()
    registry_path.write_text(REGISTRY_TOML)
    registry = load_registry(registry_path)
    outputs = root / "outputs"
    options = planning.RunOptions(outputs_dir=outputs, checkpoints_dir=root / "checkpoints",
                                data_config=DataConfig(source="synthetic-tui-tests"), owner="tui-tests:1:runner")
    configs = [registry.get(exp_id) for exp_id in RUN_IDS]
    store_path = outputs / "fembed.db"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(group, "dataset_for", lambda item, cache: _dataset())
        outputs.mkdir(parents=True)
        with RunStore(store_path) as store:
            plan = planning.make_plan(configs, options, store)
        summary = local.run_queue(plan, options)
    assert summary.done == ["LF-01", "LF-02"], f"the tiny run did not train: {summary}"
    assert list(summary.failed) == ["LF-03"], f"LF-03 should fail on its tier's width: {summary}"

    with RunStore(store_path) as store:
        running, pending = registry.get("LF-04"), registry.get("LF-05")
        store.sync_queue([{**cfg.to_dict(), "run_hash": planning.run_hash(cfg, options.data_config)}
                          for cfg in (*configs, running, pending)])
        assert store.claim("LF-04", OWNER)
        for epoch in (0, 1):
            rows = [{"seed": s, "train_loss": tl, "val_loss": vl, "val_auc": auc, "active": active,
                     "is_best": True} for e, s, tl, vl, auc, active in RUNNING_EPOCHS if e == epoch]
            store.record_epoch("LF-04", planning.run_hash(running, options.data_config), epoch, rows)
        store.record_result("AE-01", None, _legacy_record("AE-01"), legacy=True)
    return FilledStore(registry_path, outputs, store_path, time.time())


@pytest.fixture
def registry(filled_store):
    from fembed_jax.registry import load_registry

    return load_registry(filled_store.registry_path)


class FrozenClock:
    """A fixed "now" for elapsed/ETA (the snapshot tests mask times anyway)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = now if now is not None else time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fixture_clock(filled_store) -> FrozenClock:
    """The clock at the fixture's end (see FilledStore.now)."""
    return FrozenClock(filled_store.now)
