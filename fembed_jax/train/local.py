"""`fembed run`: the queue trained in this process, one group at a time.

For each group of the plan (experiments sharing one compiled program; RunOptions.group=False:
one experiment each): claim it, keep the claims alive, train it (group.train_group: resume from
the latest intact checkpoint, K seeds at once), land each experiment's outcome, move on. An
experiment whose result the store holds for the same run hash is skipped. A failing experiment
is recorded with its error and the queue goes on. Ctrl-C or SIGTERM stops within seconds: after
the chunk of steps in flight, the position inside the epoch is checkpointed and the experiments
are left pending (a second Ctrl-C quits at once, with the last checkpoint). Once an
experiment's result is recorded, its checkpoints shrink to what `fembed evaluate` needs
(RunOptions.keep). The store's side of all this is queue.QueueSession.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from fembed_jax.train.group import Stopped, failed, train_group
from fembed_jax.train.plan import PlanItem, RunOptions
from fembed_jax.train.queue import ClaimLost, QueueSession, RunSummary, StopFlag


def run_queue(plan: list[PlanItem], options: RunOptions, *,
              progress: Callable[..., None] | None = None) -> RunSummary:
    """Train every item of the plan that is not done; `progress(event, **info)` is told what
    happens (queue.py lists the events)."""
    from fembed_jax.store import StoreError

    session = QueueSession(plan, options, progress)
    if not session.open():
        return session.summary
    summary = session.summary
    datasets: dict = {}
    with session, StopFlag(session.signal_seen) as stop_flag:
        session.skip_done()
        queue = session.groups()
        position = 0
        while queue:
            if stop_flag():
                break
            claimed = session.claim(queue.popleft())
            if claimed is None:  # the store failed
                break
            if not claimed:
                continue
            session.announce(claimed, position)
            try:
                with session.heartbeat(claimed):
                    outcome = train_group(claimed, options, should_stop=stop_flag,
                                          on_epoch=session.record_epoch,
                                          on_step=session.record_step, datasets=datasets)
            except ClaimLost as exc:
                rest = session.lost(claimed, exc.exp_id)
                if rest:
                    queue.appendleft(rest)
                continue
            except (StoreError, sqlite3.Error) as exc:
                session.release(claimed)
                session.store_failure(claimed[0], exc)
                break
            except KeyboardInterrupt:  # a second Ctrl-C: leave the experiments to be resumed
                session.release(claimed)
                raise
            except Exception as exc:  # the whole program failed: each member is recorded failed
                outcome = failed(claimed, exc)
            if isinstance(outcome, Stopped):
                session.stopped(claimed, outcome)
                break
            position += len(claimed)
            if not session.finish_group(claimed, outcome):
                break
        # A signal between experiments, or during the last one, still shows in the exit code.
        if stop_flag():
            summary.signal_name = stop_flag.signal_name
    return summary
