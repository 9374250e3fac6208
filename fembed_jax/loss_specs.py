"""What each loss is called, which parameters it takes and their checks, its compiled-program
family and its early-stopping metric: the facts the registry validates against, kept free of jax
so that loading a registry (`fembed list`) does not start it. The math is in fembed_jax.losses."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EPS = 1e-7  # clamp of the "clamped" losses

def _any_finite(v: float) -> str | None:
    return None


def _at_least_zero(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _unit_interval(v: float) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _clamp_eps(v: float) -> str | None:
    return None if 0 <= v < 0.5 else "must be in [0, 0.5)"


@dataclass(frozen=True)
class _Param:
    default: float
    check: Callable[[float], str | None]


@dataclass(frozen=True)
class _LossSpec:
    family: str  # losses of one family share their compiled program (same fn, same hparam keys)
    params: Mapping[str, _Param]
    early_stop_metric: str


# Validation rejects only what has no meaning: a negative focusing exponent, a weight or
# probability outside [0, 1], a non-positive pos_weight or temperature, an eps that inverts the
# clamp. Regularisation strengths (lambda_*) may be any finite number: a negative value flips the
# regulariser (e.g. lambda_entropy < 0 gives the confidence bonus EntropyReg was meant to be).
_EPS = _Param(EPS, _clamp_eps)
SPECS: dict[str, _LossSpec] = {
    "bce": _LossSpec("bce", {}, "val_auc"),
    "softauc": _LossSpec("softauc", {"gamma": _Param(2.0, _at_least_zero)}, "val_auc"),
    "focal": _LossSpec("focal",
        {"gamma": _Param(2.0, _at_least_zero), "alpha": _Param(0.25, _unit_interval), "eps": _EPS},
        "val_auc",
    ),
    "weightedsum": _LossSpec("weightedsum",
        {"alpha": _Param(0.5, _unit_interval), "gamma": _Param(2.0, _at_least_zero)},
        "val_auc",
    ),
    "weightedbce": _LossSpec("weightedbce", {"pos_weight": _Param(1.0, _positive), "eps": _EPS}, "val_auc"
    ),
    "labelsmoothing": _LossSpec("labelsmoothing", {"epsilon": _Param(0.1, _unit_interval)}, "val_loss"
    ),
    "mildfocal": _LossSpec("focal",
        {"gamma": _Param(0.75, _at_least_zero), "alpha": _Param(0.5, _unit_interval), "eps": _EPS},
        "val_auc",
    ),
    "asymmetricfocal": _LossSpec("asymmetricfocal",
        {
            "gamma_pos": _Param(1.0, _at_least_zero),
            "gamma_neg": _Param(2.0, _at_least_zero),
            "alpha": _Param(0.5, _unit_interval),
            "eps": _EPS,
        },
        "val_auc",
    ),
    "entropyreg": _LossSpec("entropyreg",
        {"lambda_entropy": _Param(0.1, _any_finite), "eps": _EPS},
        "val_loss",
    ),
    "variancereg": _LossSpec("variancereg",
        {"lambda_var": _Param(0.5, _any_finite), "eps": _EPS},
        "val_loss",
    ),
    "calibratedfocal": _LossSpec("calibratedfocal",
        {
            "gamma": _Param(2.0, _at_least_zero),
            "alpha": _Param(0.25, _unit_interval),
            "lambda_cal": _Param(0.1, _any_finite),
            "temperature": _Param(1.0, _positive),
            "eps": _EPS,
        },
        "val_loss",
    ),
}

LOSS_NAMES: tuple[str, ...] = tuple(SPECS)
EARLY_STOP_METRIC: dict[str, str] = {name: s.early_stop_metric for name, s in SPECS.items()}


def _spec(name) -> _LossSpec:
    if not isinstance(name, str) or name not in SPECS:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSS_NAMES)}")
    return SPECS[name]


def validate_loss_params(name, params: Mapping | None) -> list[str]:
    """Problems with ``params`` for loss ``name``, one message each (empty list: valid)."""
    if not isinstance(name, str) or name not in SPECS:
        return [f"unknown loss {name!r}; valid losses: {', '.join(LOSS_NAMES)}"]
    allowed = SPECS[name].params
    if params is None:
        return []
    if not isinstance(params, Mapping):
        return [f"loss_params for {name!r} must be a mapping, got {type(params).__name__}"]
    errors = []
    for key, value in params.items():
        if key not in allowed:
            valid = ", ".join(allowed) if allowed else "none"
            errors.append(f"unknown parameter {key!r} for loss {name!r}; valid parameters: {valid}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            errors.append(f"{name}.{key} must be a number, got {value!r}")
        elif not math.isfinite(value):
            errors.append(f"{name}.{key} must be finite, got {value!r}")
        elif (reason := allowed[key].check(float(value))) is not None:
            errors.append(f"{name}.{key} {reason}, got {value!r}")
    return errors


def loss_family(name: str) -> str:
    """The compiled-program family of ``name`` (mildfocal shares focal's)."""
    return _spec(name).family


def loss_hparams(name: str, /, **params) -> dict[str, float]:
    """Validated hyperparameters of ``name`` with defaults filled in, as plain floats."""
    errors = validate_loss_params(name, params)
    if errors:
        raise ValueError("; ".join(errors))
    spec = SPECS[name]
    return {key: float(params.get(key, p.default)) for key, p in spec.params.items()}


def early_stop_metric(name: str) -> str:
    """"val_loss" for labelsmoothing, entropyreg, variancereg, calibratedfocal; else "val_auc"."""
    return _spec(name).early_stop_metric
