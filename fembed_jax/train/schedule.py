"""Which experiments train together in one compiled program.

Experiments whose static structure is identical (config.structure_key: same shapes, tier,
dropout, batch) differ only in values the program takes as arrays (the loss and its
hyperparameters, learning rate, weight decay, seeds), so they can share one jit(vmap(...)) over
(experiment, seed): one compilation instead of one per experiment. A group is capped by the
members' total parameter count so that memory stays bounded (params, Adam moments and best
weights per member).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from fembed_jax.config import structure_key

T = TypeVar("T")

# Parameters of all members of a group together (x ~5 float32 copies with Adam and best weights).
MAX_GROUP_PARAMS = 40_000_000


def make_groups(items: Sequence[T], cfg_of: Callable[[T], object], params_of: Callable[[T], int],
                enabled: bool = True, max_params: int = MAX_GROUP_PARAMS,
                data_of: Callable[[T], object] = lambda item: None) -> list[list[T]]:
    """Partition items (in order) into groups of equal structure and equal data (`data_of`: a
    hashable the data they train on; one program trains on one dataset), each under max_params.

    A group is started by the first item of its structure and filled with the following items of
    the same structure; the queue order of groups follows their first items.
    """
    if not enabled:
        return [[item] for item in items]
    groups: list[list[T]] = []
    open_group: dict[tuple, int] = {}  # structure -> index of its group still accepting members
    sizes: list[int] = []
    for item in items:
        cfg = cfg_of(item)
        key = (structure_key(cfg), data_of(item))
        size = params_of(item) * cfg.seeds
        index = open_group.get(key)
        if index is not None and sizes[index] + size <= max_params:
            groups[index].append(item)
            sizes[index] += size
        else:
            open_group[key] = len(groups)
            groups.append([item])
            sizes.append(size)
    return groups
