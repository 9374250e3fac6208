"""Checkpoints: round trip of a seed-stacked train state, retention, config hash, damage."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fembed_jax.checkpoint import Checkpointer, CheckpointWarning, state_digest

SEEDS = 3


def make_state(shift: float = 0.0) -> dict:
    """A tiny seed-stacked train state shaped like the engine's."""

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "encoder": {"w": jax.random.normal(k1, (6, 4)) + shift, "b": jnp.zeros(4) + shift},
            "head": {"w": jax.random.normal(k2, (4, 1))},
        }

    params = jax.vmap(init)(jax.random.split(jax.random.key(0), SEEDS))
    opt_state = jax.vmap(optax.adam(1e-3).init)(params)
    opt_state = (opt_state[0]._replace(count=opt_state[0].count + 7), *opt_state[1:])
    return {
        "params": params,
        "opt_state": opt_state,
        "rng": jax.random.key_data(jax.random.split(jax.random.key(int(shift) + 1), SEEDS)),
        "early_stop": {"best": np.full(SEEDS, 0.5 + shift, np.float32), "bad_epochs": np.arange(SEEDS, dtype=np.int32)},
        "epoch": 4,
    }


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        if np.ndim(x):  # jax.eval_shape targets a Python int as int32: same value, new type
            assert np.asarray(x).dtype == np.asarray(y).dtype


@pytest.fixture
def abstract():
    return jax.eval_shape(make_state)


def step_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in step_dir.rglob("*") if p.is_file())


def test_round_trip_keeps_optax_namedtuples_and_key_data(tmp_path, abstract):
    state = make_state()
    with Checkpointer(tmp_path / "FE-01", "hash-a") as ckpt:
        path = ckpt.save(3, state, {"best_epoch": np.int64(2), "seeds": [0, 1, 2]})
        assert path == tmp_path / "FE-01" / "3" and path.is_dir()
        restored = ckpt.restore_latest(abstract)
    assert restored is not None
    epoch, got, meta = restored
    assert epoch == 3
    assert_same(state, got)
    adam, empty = got["opt_state"]
    assert isinstance(adam, optax.ScaleByAdamState) and isinstance(empty, optax.EmptyState)
    assert adam.mu["encoder"]["w"].shape == (SEEDS, 6, 4)
    assert got["rng"].dtype == np.uint32 and got["rng"].shape == (SEEDS, 2)
    assert meta["run_hash"] == "hash-a" and meta["epoch"] == 3
    assert meta["best_epoch"] == 2 and meta["seeds"] == [0, 1, 2]


def test_restore_accepts_a_concrete_target_and_a_relative_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = make_state()
    with Checkpointer("checkpoints/FE-01", "h") as ckpt:
        ckpt.save(0, state)
        assert ckpt.directory == tmp_path / "checkpoints" / "FE-01"
        assert_same(state, ckpt.restore_latest(state).state)


def test_max_to_keep_retains_the_newest_steps(tmp_path, abstract):
    with Checkpointer(tmp_path / "c", "h", max_to_keep=2) as ckpt:
        for epoch in range(5):
            ckpt.save(epoch, make_state(float(epoch)))
        assert ckpt.steps() == [3, 4]
        restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 4
    assert_same(make_state(4.0), restored.state)


def test_saving_an_earlier_epoch_replaces_later_steps(tmp_path, abstract):
    with Checkpointer(tmp_path / "c", "h", max_to_keep=3) as ckpt:
        for epoch in range(3):
            ckpt.save(epoch, make_state(float(epoch)))
        ckpt.save(1, make_state(10.0))  # resumed from epoch 0 and redid epoch 1
        assert ckpt.steps() == [0, 1]
        restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 1
    assert_same(make_state(10.0), restored.state)


def test_steps_of_another_config_are_skipped(tmp_path, abstract):
    directory = tmp_path / "c"
    with Checkpointer(directory, "new", max_to_keep=3) as ckpt:
        ckpt.save(0, make_state())
    with Checkpointer(directory, "old", max_to_keep=3) as other:
        other.save(1, make_state(1.0))
    with Checkpointer(directory, "new") as ckpt:
        with pytest.warns(CheckpointWarning, match=rf"{directory / '1'}: saved for run 'old'"):
            restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 0
    assert_same(make_state(), restored.state)

    with Checkpointer(directory, "third") as ckpt:
        with pytest.warns(CheckpointWarning):
            assert ckpt.restore_latest(abstract) is None


def truncate(path: pathlib.Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def garble(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(len(data), middle + 16)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "garbled": garble, "deleted": os.remove}


def largest_file(step_dir: pathlib.Path) -> pathlib.Path:
    """The biggest file of a step: array data, where flipped bytes restore silently in orbax."""
    return max(step_files(step_dir), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("victim", ["array data", "meta/metadata", "state/_METADATA"])
def test_damaged_latest_step_falls_back_to_the_previous_one(tmp_path, abstract, damage, victim):
    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(0, make_state())
        ckpt.save(1, make_state(1.0))
    latest = directory / "1"
    target = largest_file(latest) if victim == "array data" else latest / victim
    assert target.is_file(), f"orbax layout changed: {step_files(latest)}"
    DAMAGE[damage](target)

    with Checkpointer(directory, "h") as ckpt:
        with pytest.warns(CheckpointWarning, match=rf"checkpoint {latest}: "):
            restored = ckpt.restore_latest(abstract)
        assert restored.epoch == 0
        assert_same(make_state(), restored.state)
        # Training continues from epoch 0: the damaged step 1 is replaced, not kept.
        ckpt.save(1, make_state(2.0))
        assert_same(make_state(2.0), ckpt.restore_latest(abstract).state)


def test_all_steps_damaged_gives_none(tmp_path, abstract):
    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(0, make_state())
        ckpt.save(1, make_state(1.0))
    garble(largest_file(directory / "1"))
    (directory / "0" / "meta" / "metadata").unlink()
    with Checkpointer(directory, "h") as ckpt, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ckpt.restore_latest(abstract) is None
    messages = [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]
    assert any(str(directory / "1") in m for m in messages)
    assert any(str(directory / "0") in m for m in messages)


def edit_meta(step_dir: pathlib.Path, change) -> None:
    """Rewrite a step's meta item as valid JSON after ``change(meta)``: no orbax check sees it."""
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def one_loss_digit_changed(meta):
    """C9: one digit of a loss in the history (the JSON stays valid)."""
    meta["history"][-1]["val_loss"][0] = 0.6543229  # saved as 0.6543219


def epoch_decremented(meta):
    """C10: 'epoch' one lower (a step claiming to be the one before)."""
    meta["epoch"] -= 1


def digest_removed(meta):
    del meta["meta_sha256"]


def digest_of_other_content(meta):
    meta["meta_sha256"] = "0" * 64


META_EDITS = {f.__name__: f for f in (one_loss_digit_changed, epoch_decremented, digest_removed,
                                       digest_of_other_content)}
HISTORY = [{"epoch": 0, "train_loss": [0.6931471805599453, 0.69], "val_loss": [0.7012345, 0.7]},
           {"epoch": 1, "train_loss": [0.61, 0.62], "val_loss": [0.6543219, 0.65]}]


@pytest.mark.parametrize("edit", sorted(META_EDITS))
def test_edited_metadata_is_damage_and_is_never_resumed(tmp_path, abstract, edit):
    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(0, make_state(), {"history": HISTORY[:1]})
        ckpt.save(1, make_state(1.0), {"history": HISTORY})
    edit_meta(directory / "1", META_EDITS[edit])

    with Checkpointer(directory, "h") as ckpt:
        with pytest.warns(CheckpointWarning, match=rf"checkpoint {directory / '1'}: metadata "):
            restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 0  # the previous, intact step
    assert_same(make_state(), restored.state)
    assert restored.meta["history"] == HISTORY[:1]
    assert "meta_sha256" not in restored.meta and "state_sha256" not in restored.meta


def test_metadata_edited_to_claim_this_config_is_not_resumed(tmp_path, abstract):
    directory = tmp_path / "c"
    with Checkpointer(directory, "other") as ckpt:
        ckpt.save(0, make_state())

    def claim_h(meta):
        meta["run_hash"] = "h"

    edit_meta(directory / "0", claim_h)
    with Checkpointer(directory, "h") as ckpt:
        with pytest.warns(CheckpointWarning, match="metadata does not match its digest"):
            assert ckpt.restore_latest(abstract) is None


def test_a_step_saved_before_the_run_hash_was_named_so_still_resumes(tmp_path, abstract):
    """Steps an older fembed wrote keep the run hash as meta "config_hash" (digest over it)."""
    from fembed_jax.checkpoint import meta_digest

    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(0, make_state(), {"history": HISTORY[:1]})

    def as_older_fembed_wrote_it(meta):
        meta["config_hash"] = meta.pop("run_hash")
        meta.pop("meta_sha256")
        meta["meta_sha256"] = meta_digest(meta)

    edit_meta(directory / "0", as_older_fembed_wrote_it)
    with Checkpointer(directory, "h") as ckpt:
        restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 0 and restored.meta["history"] == HISTORY[:1]
    assert_same(make_state(), restored.state)
    with Checkpointer(directory, "other") as ckpt, pytest.warns(CheckpointWarning, match="saved for run 'h'"):
        assert ckpt.restore_latest(abstract) is None


def test_the_meta_digest_survives_orbax_json_round_trip_of_awkward_values(tmp_path, abstract):
    meta = {"history": [{"loss": [0.1 + 0.2, 1e-320, -0.0, 1e300, None]}], "note": "naïve ✓",
            "seeds": [42, 2**62], "nested": {"b": 1, "a": [True, False]}}
    with Checkpointer(tmp_path / "c", "h") as ckpt:
        ckpt.save(0, make_state(), meta)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CheckpointWarning)
            restored = ckpt.restore_latest(abstract)
    assert restored.meta["history"] == meta["history"] and restored.meta["note"] == meta["note"]


def as_format_1(meta):
    """What fembed saved before the meta digest existed."""
    del meta["meta_sha256"]
    meta["checkpoint_format"] = 1


def test_steps_saved_before_the_meta_digest_are_still_restored(tmp_path, abstract, caplog):
    """`fembed evaluate` of runs finished by the previous release reads their checkpoints."""
    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(0, make_state(), {"history": [1]})
        ckpt.save(1, make_state(1.0), {"history": [1, 2]})
    edit_meta(directory / "1", as_format_1)
    with Checkpointer(directory, "h") as ckpt, warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 1 and restored.meta["history"] == [1, 2]
    assert "cannot be verified" in caplog.text

    # ... but their epoch must still be their step's.
    edit_meta(directory / "1", epoch_decremented)
    with Checkpointer(directory, "h") as ckpt:
        with pytest.warns(CheckpointWarning, match=r"metadata is of epoch 0, not of its step 1"):
            assert ckpt.restore_latest(abstract).epoch == 0


def test_unfinished_tmp_step_is_never_read_and_is_cleaned_up(tmp_path, abstract):
    directory = tmp_path / "c"
    with Checkpointer(directory, "h") as ckpt:
        ckpt.save(1, make_state(1.0))
    # What a crash mid-save leaves: orbax writes <step>.orbax-checkpoint-tmp, renames at the end.
    shutil.copytree(directory / "1", directory / "2.orbax-checkpoint-tmp")
    with Checkpointer(directory, "h") as ckpt:
        assert ckpt.steps() == [1]
        assert ckpt.restore_latest(abstract).epoch == 1
        ckpt.save(2, make_state(2.0))
        assert ckpt.steps() == [1, 2]
    assert sorted(p.name for p in directory.iterdir() if "tmp" in p.name) == []


def test_clear_removes_everything(tmp_path, abstract):
    with Checkpointer(tmp_path / "c", "h") as ckpt:
        ckpt.save(0, make_state())
        ckpt.clear()
        assert not (tmp_path / "c").exists()
        assert ckpt.steps() == [] and ckpt.restore_latest(abstract) is None
        ckpt.save(0, make_state())  # usable again after clear
        assert ckpt.steps() == [0]


def test_meta_is_validated(tmp_path):
    with Checkpointer(tmp_path / "c", "h") as ckpt:
        with pytest.raises(ValueError, match="meta run_hash 'other'"):
            ckpt.save(0, make_state(), {"run_hash": "other"})
        with pytest.raises(ValueError, match="reserved"):
            ckpt.save(0, make_state(), {"epoch": 3})
        with pytest.raises(ValueError, match="epoch must be >= 0"):
            ckpt.save(-1, make_state())
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path / "c", "h", max_to_keep=0)


def test_digest_sees_every_byte_and_ignores_scalar_container_types():
    state = make_state()
    changed = jax.tree.map(lambda x: x, state)
    changed["early_stop"]["best"] = state["early_stop"]["best"].copy()
    changed["early_stop"]["best"][1] += 1e-6
    assert state_digest(state) != state_digest(changed)
    assert state_digest({"a": 3, "b": np.int32(2)}) == state_digest({"a": np.asarray(3), "b": np.asarray(2, np.int32)})


SAVE_ON_TWO_DEVICES = """
import sys, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from fembed_jax.checkpoint import Checkpointer
assert jax.device_count() == 2
mesh = Mesh(np.array(jax.devices()), ("seed",))
w = jax.device_put(jnp.arange(12.0).reshape(2, 6), NamedSharding(mesh, PartitionSpec("seed")))
Checkpointer(sys.argv[1], "h").save(0, {"w": w})
"""


def test_resume_on_another_device_count(tmp_path):
    """Saved with seeds sharded over 2 host devices, restored on 1 with an eval_shape target."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", SAVE_ON_TWO_DEVICES, str(tmp_path / "c")], env=env, check=True, timeout=120)
    target = jax.eval_shape(lambda: {"w": jnp.zeros((2, 6))})
    with Checkpointer(tmp_path / "c", "h") as ckpt:
        restored = ckpt.restore_latest(target)
    assert restored is not None
    np.testing.assert_array_equal(np.asarray(restored.state["w"]), np.arange(12.0).reshape(2, 6))


# -- a step inside an epoch, and what a finished experiment keeps ------------------------------

def test_the_target_may_depend_on_the_step_meta(tmp_path, abstract):
    """A step saved inside an epoch holds more (its position): the caller picks its target by
    the meta."""
    inside = {**make_state(1.0), "position": {"step": np.int32(3), "losses": np.arange(5, dtype=np.float32)}}
    with Checkpointer(tmp_path / "c", "h") as ckpt:
        ckpt.save(0, make_state())
        ckpt.save(1, inside, {"position": {"step": 3, "steps": 5}})
        targets = []

        def target(meta):
            targets.append(meta.get("position"))
            if not meta.get("position"):
                return abstract
            return {**abstract, "position": {"step": np.int32(0), "losses": np.zeros(5, np.float32)}}

        restored = ckpt.restore_latest(target)
    assert restored.epoch == 1 and targets == [{"step": 3, "steps": 5}]
    assert_same(inside, restored.state)


def finished(directory: pathlib.Path, *, selected: bool = True) -> Checkpointer:
    """The checkpoints a finished run leaves: its last two steps, and its selected weights."""
    ckpt = Checkpointer(directory, "h")
    for epoch in range(4):
        ckpt.save(epoch, make_state(float(epoch)), {"history": list(range(epoch + 1))})
    if selected:
        state = make_state(3.0)
        ckpt.save_selected(3, {"params": state["params"], "epoch": 3}, {"history": [0, 1, 2, 3]})
    return ckpt


def test_keep_best_leaves_only_the_selected_weights_and_they_restore(tmp_path, abstract):
    ckpt = finished(tmp_path / "c")
    with ckpt:
        freed = ckpt.free("best")
        assert ckpt.steps() == [] and sorted(p.name for p in (tmp_path / "c").iterdir()) == ["selected"]
        assert freed.kept == "best" and freed.after < freed.before / 4
        restored = ckpt.restore_latest(abstract)  # the caller's whole target: only its items come back
    assert restored.epoch == 3 and sorted(restored.state) == ["epoch", "params"]
    assert_same(make_state(3.0)["params"], restored.state["params"])
    assert restored.meta["history"] == [0, 1, 2, 3]


def test_the_per_epoch_steps_are_preferred_while_they_exist(tmp_path, abstract):
    with finished(tmp_path / "c") as ckpt:
        restored = ckpt.restore_latest(abstract)
    assert restored.epoch == 3 and "opt_state" in restored.state


def test_keep_last_leaves_the_newest_step(tmp_path, abstract):
    with finished(tmp_path / "c") as ckpt:
        freed = ckpt.free("last")
        assert ckpt.steps() == [3] and not (tmp_path / "c" / "selected").exists()
        assert freed.kept == "last" and freed.after < freed.before
        assert_same(make_state(3.0), ckpt.restore_latest(abstract).state)


def test_keep_all_deletes_nothing(tmp_path):
    with finished(tmp_path / "c") as ckpt:
        freed = ckpt.free("all")
        assert ckpt.steps() == [2, 3] and freed.before == freed.after


@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_keep_best_without_intact_selected_weights_keeps_the_last_state(tmp_path, abstract, damage):
    """Run by an older fembed (no selected/), or selected/ damaged: the last state stays, as it
    holds the best weights too."""
    ckpt = finished(tmp_path / "c", selected=damage != "missing")
    if damage == "garbled":
        garble(largest_file(tmp_path / "c" / "selected" / "3" / "state"))
    with ckpt:
        freed = ckpt.free("best")
        assert freed.kept == "last" and ckpt.steps() == [3]
        assert_same(make_state(3.0), ckpt.restore_latest(abstract).state)


def test_keep_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="keep must be one of"):
        Checkpointer(tmp_path / "c", "h").free("some")
