"""Per-seed early stopping with the original trainer's rule (spec §4), on the host.

Mode val_auc: best starts at -inf, an epoch improves iff auc > best + min_delta.
Mode val_loss: best starts at +inf, an epoch improves iff loss < best - min_delta.
A seed stops once `patience` epochs in a row did not improve. Epoch 0 always improves.
Fixed relative to the original (B8): an undefined AUC never improves (the original silently
compared -val_loss against AUC values). A non-finite loss marks the seed diverged and stops it.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class StopState:
    best_metric: np.ndarray  # (K,) float64, in "higher is better" units (val_loss negated)
    counter: np.ndarray  # (K,) int32 epochs since the last improvement
    stopped: np.ndarray  # (K,) bool
    diverged: np.ndarray  # (K,) bool
    best_epoch: np.ndarray  # (K,) int32, -1 before the first epoch
    stop_epoch: np.ndarray  # (K,) int32 last epoch the seed trained, -1 while it still trains

    @classmethod
    def fresh(cls, num_seeds: int) -> "StopState":
        return cls(best_metric=np.full(num_seeds, -np.inf), counter=np.zeros(num_seeds, np.int32),
                   stopped=np.zeros(num_seeds, bool), diverged=np.zeros(num_seeds, bool),
                   best_epoch=np.full(num_seeds, -1, np.int32),
                   stop_epoch=np.full(num_seeds, -1, np.int32))

    def to_tree(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_tree(cls, tree: dict) -> "StopState":
        return cls(**{f.name: np.array(tree[f.name]) for f in dataclasses.fields(cls)})

    @property
    def active(self) -> np.ndarray:
        return ~self.stopped

    def update(self, epoch: int, metric: str, val_auc: list, val_loss: np.ndarray,
               train_loss: np.ndarray, patience: int, min_delta: float) -> np.ndarray:
        """Apply one epoch's validation results to the seeds still training.

        Returns the (K,) mask of seeds that improved this epoch (their weights become the best).
        """
        improved = np.zeros_like(self.stopped)
        for k in range(len(self.stopped)):
            if self.stopped[k]:
                continue
            if not (np.isfinite(train_loss[k]) and np.isfinite(val_loss[k])):
                self.diverged[k] = True
                self.stopped[k] = True
                self.stop_epoch[k] = epoch
                continue
            value = val_auc[k] if metric == "val_auc" else -float(val_loss[k])
            if value is not None and value > self.best_metric[k] + min_delta:
                self.best_metric[k] = value
                self.counter[k] = 0
                self.best_epoch[k] = epoch
                improved[k] = True
            else:
                self.counter[k] += 1
                if self.counter[k] >= patience:
                    self.stopped[k] = True
                    self.stop_epoch[k] = epoch
        return improved

    def finish(self, last_epoch: int) -> None:
        """Seeds still training when max epochs ran out stop at the last epoch."""
        still = ~self.stopped
        self.stop_epoch[still] = last_epoch
        self.stopped[still] = True
