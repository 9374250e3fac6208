"""`fembed` with timestamps: the CLI unchanged, plus a record of when each training epoch ran.

    FEMBED_BENCH_TIMINGS=/tmp/t.json python bench/fembed_timed.py run --exp-id FE-06 --epochs 2 ...

Runs fembed_jax.cli.main.main(argv) in this process after wrapping Engine.train_epoch (class
attribute, no library file is touched) so that every call records its wall-clock start and end
(the end after the epoch's loss is ready), and after registering JAX monitoring listeners that
record every program JAX compiles or loads from the persistent cache (name, seconds, hit/miss).
At exit the record is written as JSON to $FEMBED_BENCH_TIMINGS. Python start-up and imports are
the same as the `fembed` entry point's; the wrapper adds well under 0.1 s.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

ENTERED = time.time()
RECORD: dict = {"entered": ENTERED, "epochs": [], "compiles": [], "cache_events": []}


def _install() -> None:
    import jax.monitoring

    pending = {"cache": None}

    def on_event(event, **kwargs):
        name = event.rsplit("/", 1)[-1]
        RECORD["cache_events"].append(name)
        if name in ("cache_hits", "cache_misses"):
            pending["cache"] = "hit" if name == "cache_hits" else "miss"

    def on_duration(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            RECORD["compiles"].append({"fun": str(kwargs.get("fun_name")), "seconds": round(duration, 3),
                                       "cache": pending["cache"], "at": time.time()})
            pending["cache"] = None

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)

    from fembed_jax.train import engine

    original = engine.Engine.train_epoch

    def timed_train_epoch(self, *args, **kwargs):
        import jax

        start = time.time()
        out = original(self, *args, **kwargs)
        jax.block_until_ready(out[2])
        RECORD["epochs"].append({"exp": self.cfg.exp_id, "seeds": int(self.cfg.seeds),
                                 "start": start, "end": time.time()})
        return out

    engine.Engine.train_epoch = timed_train_epoch


def _dump() -> None:
    path = os.environ.get("FEMBED_BENCH_TIMINGS")
    if path:
        RECORD["exited"] = time.time()
        with open(path, "w") as fh:
            json.dump(RECORD, fh, indent=1)


def main() -> int:
    atexit.register(_dump)
    # Install right after the CLI's runtime.configure(): JAX must not be imported before it
    # (XLA flags and the platform are read at import), and nothing compiles before it.
    from fembed_jax import runtime

    configure = runtime.configure

    def configure_then_install(*args, **kwargs):
        configure(*args, **kwargs)
        RECORD["configured"] = time.time()
        _install()

    runtime.configure = configure_then_install
    from fembed_jax.cli.main import main as fembed_main

    return fembed_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
