"""What an experiment's resolved config changes relative to the registry defaults alone.

Used by `fembed show` and the TUI's detail view. The baseline of an experiment is the config the
registry's ``[defaults]`` would give it with the same identity (id, priority, tier, features):
early stopping watches the metric the loss implies unless the defaults name one.
"""

from __future__ import annotations

from collections.abc import Mapping

from fembed_jax.config import ExperimentConfig, default_early_stop_metric

# Identity fields: they name the experiment, they are not a setting that "differs".
_IDENTITY = {"exp_id", "priority", "description", "tier", "num_features"}


def baseline_config(cfg: ExperimentConfig, defaults: Mapping[str, object]) -> ExperimentConfig:
    """``cfg``'s identity with every other field from the registry defaults."""
    defaults = dict(defaults)
    base = ExperimentConfig(exp_id=cfg.exp_id, priority=cfg.priority, tier=cfg.tier,
                            num_features=cfg.num_features, **defaults)
    return base.replace(early_stop_metric=defaults.get("early_stop_metric",
                                                       default_early_stop_metric(base.loss)))


def differences_from_defaults(cfg: ExperimentConfig, defaults: Mapping[str, object]) -> dict[str, object]:
    """Fields whose value is not the one the registry defaults alone would give."""
    base = baseline_config(cfg, defaults).to_dict()
    return {key: value for key, value in cfg.to_dict().items()
            if key not in _IDENTITY and value != base[key]}
