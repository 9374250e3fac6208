"""`fembed tui`: the Textual monitor of the run store (installed as fembed_jax.tui)."""
