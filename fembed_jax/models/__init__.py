"""PatchTST classifier and feature embeddings in Flax linen (pure init/apply over params pytrees).

    model = build_model(cfg)                       # cfg: ExperimentConfig or any object with its fields
    variables = model.init({"params": k1, "dropout": k2}, x, train=False)
    probs, aux_loss = model.apply(variables, x, train=True, rngs={"dropout": k})   # (B,), scalar
"""

from fembed_jax.models.attention_embedding import AttentionFeatureEmbedding
from fembed_jax.models.dropout import Dropout, dropout, effective_rate
from fembed_jax.models.embeddings import EMBEDDINGS, build_embedding, progressive_dims
from fembed_jax.models.patchtst import (
    PatchTST,
    build_model,
    count_params,
    extract_patches,
    init_params,
    num_patches,
)
from fembed_jax.models.revin import RevIN

__all__ = [
    "EMBEDDINGS",
    "AttentionFeatureEmbedding",
    "Dropout",
    "PatchTST",
    "RevIN",
    "build_embedding",
    "build_model",
    "count_params",
    "dropout",
    "effective_rate",
    "extract_patches",
    "init_params",
    "num_patches",
    "progressive_dims",
]
