"""fembed: PatchTST feature-embedding experiments in JAX/Flax."""

__version__ = "0.1.0"
