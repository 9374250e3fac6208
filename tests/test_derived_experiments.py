"""Experiments made from other experiments: `show --toml` entries, [[grids]], `run --set`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fembed_jax.cli.main import main
from fembed_jax.registry import RegistryError, load_registry

REGISTRY = Path(__file__).resolve().parents[1] / "registry" / "experiments.toml"


def _header() -> str:
    """The real registry's [defaults], [tiers] and [data] without its experiments."""
    text = REGISTRY.read_text()
    return text[: text.index("[[experiments]]")]


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "registry").mkdir(exist_ok=True)
    path = tmp_path / "registry" / "experiments.toml"
    path.write_text(_header() + body)
    return path


def test_show_toml_round_trips_every_experiment(tmp_path):
    from fembed_jax.cli.cmd_show import registry_entry

    real = load_registry(REGISTRY)
    body = "\n".join(registry_entry(cfg, dict(real.defaults)) for cfg in real.experiments)
    again = load_registry(_project(tmp_path, body))
    assert [c.to_dict() for c in again.experiments] == [c.to_dict() for c in real.experiments]
    assert [c.config_hash for c in again.experiments] == [c.config_hash for c in real.experiments]


def _base_entry(exp_id: str) -> str:
    from fembed_jax.cli.cmd_show import registry_entry

    real = load_registry(REGISTRY)
    return registry_entry(real.get(exp_id), dict(real.defaults))


def test_a_grid_expands_into_named_experiments(tmp_path, capsys):
    path = _project(tmp_path, _base_entry("LF-40") + """
[[grids]]
name = "eps"
base = "LF-40"
vary = { loss_params.epsilon = [0.1, 0.3], learning_rate = [1e-4, 3e-4] }
""")
    registry = load_registry(path)
    ids = [c.exp_id for c in registry.experiments]
    assert ids == ["LF-40"] + [f"LF-40.EPS-{n}" for n in range(1, 5)]
    points = {(c.loss_params["epsilon"], c.learning_rate) for c in registry.experiments[1:]}
    assert points == {(0.1, 1e-4), (0.1, 3e-4), (0.3, 1e-4), (0.3, 3e-4)}
    assert len({c.config_hash for c in registry.experiments}) == 5
    assert main(["--registry", str(path), "list", "--json", "-e", "LF-40.EPS-2"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["priority"] == "LF-P5" and "[grid eps:" in row["description"]


@pytest.mark.parametrize("grid, message", [
    ('name = "eps"\nbase = "LF-99"\nvary = { learning_rate = [1e-4] }', "no experiment 'LF-99'"),
    ('name = "../x"\nbase = "LF-40"\nvary = { learning_rate = [1e-4] }', "field 'name'"),
    ('name = "eps"\nbase = "LF-40"\nvary = { learning_rate = 1e-4 }', "non-empty list"),
    ('name = "eps"\nbase = "LF-40"\nvary = { learning_rate = [-1.0] }', "must be positive"),
])
def test_a_bad_grid_names_its_line_and_field(tmp_path, grid, message):
    path = _project(tmp_path, _base_entry("LF-40") + "\n[[grids]]\n" + grid + "\n")
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    line = path.read_text().splitlines().index("[[grids]]") + 1
    assert any(f"{path}:{line}:" in e and message in e for e in info.value.errors), info.value.errors


def test_run_set_makes_a_recorded_derived_experiment(tmp_path, capsys):
    path = _project(tmp_path, _base_entry("FE-06"))
    args = ["--registry", str(path), "run", "-e", "FE-06", "--set", "learning_rate=3e-4", "--set",
            "loss_params.gamma=3.0", "--set", "loss=focal"]
    assert main(args + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ".SET-" in out and not (tmp_path / "registry" / "derived.toml").exists()  # dry-run writes nothing

    from fembed_jax.cli.derive import derived_configs

    registry = load_registry(path)
    (made,) = derived_configs(registry, [registry.get("FE-06")], args[-5::2], record=True)
    assert made.exp_id.startswith("FE-06.SET-") and made.learning_rate == 3e-4
    assert made.loss == "focal" and dict(made.loss_params) == {"gamma": 3.0}
    derived = tomllib.loads((tmp_path / "registry" / "derived.toml").read_text())
    assert [e["id"] for e in derived["experiments"]] == [made.exp_id]
    again = load_registry(path)  # the derived experiment is now part of the registry
    assert again.get(made.exp_id).config_hash == made.config_hash
    derived_configs(again, [registry.get("FE-06")], args[-5::2], record=True)  # same overrides
    assert len(tomllib.loads((tmp_path / "registry" / "derived.toml").read_text())["experiments"]) == 1


@pytest.mark.parametrize("setting, message", [
    ("learning_rate=-1", "must be positive"),
    ("lerning_rate=1e-3", "did you mean 'learning_rate'"),
    ("id=FE-99", "cannot change id"),
    ("novalue", "expected KEY=VALUE"),
])
def test_bad_set_values_are_one_clear_error(tmp_path, capsys, setting, message):
    path = _project(tmp_path, _base_entry("FE-06"))
    code = main(["--registry", str(path), "run", "-e", "FE-06", "--set", setting, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
