"""PyTorch eager reference of the original's channel-mixing PatchTST (spec §1), for bench/ only.

Written from the specification (docs: /work/shared/reference/original_system.md §1), not imported
from fembed: it is the yardstick fembed's JAX engine is timed against.

    x (B, T, F) -> RevIN -> Linear(F -> E) -> LayerNorm -> Dropout            (feature embedding)
      -> unfold time into N = (T - P) // S + 1 patches, each flattened time-major (t * E + f)
      -> Linear(P*E -> D) -> + pos[:, :N] (table of N + 10 rows, N(0, 1)) -> Dropout
      -> L x pre-norm layer:  h = x + MHA(LN1 x);  y = h + Drop(W2 Drop(GELU(W1 LN2 h)))
      -> LayerNorm -> flatten (B, N*D) -> Dropout(head_dropout) -> Linear(N*D -> 1) -> sigmoid

RevIN: mu = mean_t x, sigma = std_t x (unbiased) + 1e-5, y = (x - mu) / sigma * gamma + beta.
MHA: torch.nn.MultiheadAttention(batch_first=True, dropout=p), called as the original does:
``attn(h, h, h)`` (need_weights left at its default, True). GELU exact (erf), LayerNorm eps 1e-5,
PyTorch default initialisation everywhere. Training: Adam(lr, weight_decay) + BCELoss on the
probabilities, batch 128, shuffled, drop_last False (the last batch is short).

Parameter count = F*E + 3E + P*E*D + D + (N+10)*D + L*(4D^2 + 4D + 4D + 2*D*d_ff + d_ff + D)
+ 2D + N*D + 1 + 2F (RevIN): 866,089 for FE-06 and 227,353 for FE-50.

Data: windows are gathered from the (rows, F) feature matrix per batch by tensor indexing (as
fembed's engine gathers them on the device), not through a Python DataLoader; this favours the
reference (the original's DataLoader costs extra per batch), so the ratio is a fair lower bound.
"""

from __future__ import annotations

import torch
from torch import nn

EXPECTED_PARAMS = {"FE-06": 866_089, "FE-50": 227_353}
EXTRA_POSITION_ROWS = 10


class RevIN(nn.Module):
    """Normalise-only reversible instance norm over time, per sample and raw feature."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        std = x.std(dim=1, keepdim=True) + self.eps  # unbiased (T - 1), eps outside the sqrt
        return (x - mean) / std * self.gamma + self.beta


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (attention dropout on the weights, FFN dropouts)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h)[0]
        return x + self.ffn(self.norm2(x))


class PatchTSTReference(nn.Module):
    def __init__(self, num_features: int, d_embed: int | None, d_model: int, n_layers: int,
                 n_heads: int, d_ff: int, dropout: float, head_dropout: float = 0.0,
                 context_length: int = 80, patch_length: int = 16, stride: int = 8):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.patch_length, self.stride = patch_length, stride
        self.num_patches = (context_length - patch_length) // stride + 1
        self.revin = RevIN(num_features)
        if d_embed is None:
            self.embedding = nn.Identity()
            width = num_features
        else:
            self.embedding = nn.Sequential(nn.Linear(num_features, d_embed), nn.LayerNorm(d_embed),
                                           nn.Dropout(dropout))
            width = d_embed
        self.width = width
        self.patch_proj = nn.Linear(patch_length * width, d_model)
        self.pos_table = nn.Parameter(torch.randn(1, self.num_patches + EXTRA_POSITION_ROWS, d_model))
        self.pos_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head_dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(self.num_patches * d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, 1) probabilities
        x = self.embedding(self.revin(x))
        batch = x.shape[0]
        # unfold -> (B, N, E, P); time-major flattening wants (B, N, P, E)
        patches = x.unfold(1, self.patch_length, self.stride).permute(0, 1, 3, 2)
        tokens = self.patch_proj(patches.reshape(batch, self.num_patches, self.patch_length * self.width))
        tokens = self.pos_dropout(tokens + self.pos_table[:, : self.num_patches])
        for layer in self.layers:
            tokens = layer(tokens)
        flat = self.head_dropout(self.final_norm(tokens).flatten(1))
        return torch.sigmoid(self.head(flat))


def build(cfg) -> PatchTSTReference:
    """The reference model of an ExperimentConfig (simple linear embedding or none only)."""
    if cfg.embedding not in ("linear", "none"):
        raise ValueError(f"{cfg.exp_id}: the torch reference has only the simple linear embedding, "
                         f"not {cfg.embedding!r}")
    return PatchTSTReference(cfg.num_features, cfg.d_embed, cfg.d_model, cfg.n_layers, cfg.n_heads,
                             cfg.d_ff, cfg.dropout, cfg.head_dropout, cfg.context_length,
                             cfg.patch_length, cfg.stride)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Trainer:
    """Adam + BCELoss over shuffled batches of windows gathered from a feature matrix."""

    def __init__(self, cfg, matrix, starts, labels, seed: int = 42):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.model = build(cfg)
        expected = EXPECTED_PARAMS.get(cfg.exp_id)
        got = count_params(self.model)
        if expected is not None and got != expected:
            raise AssertionError(f"{cfg.exp_id}: torch reference has {got:,} parameters, spec says {expected:,}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate,
                                          weight_decay=cfg.weight_decay)
        self.loss = nn.BCELoss()
        # torch.tensor copies: fembed's dataset arrays are read-only
        self.matrix = torch.tensor(matrix, dtype=torch.float32)
        self.starts = torch.tensor(starts, dtype=torch.long)
        self.labels = torch.tensor(labels, dtype=torch.float32)
        self.window = torch.arange(cfg.context_length)
        self.generator = torch.Generator().manual_seed(seed)

    def train_epoch(self, max_batches: int | None = None) -> float:
        """One epoch; returns the mean of per-batch losses (as the original reports)."""
        self.model.train()
        n = self.starts.shape[0]
        order = torch.randperm(n, generator=self.generator)
        batch = self.cfg.batch_size
        losses = []
        for i, first in enumerate(range(0, n, batch)):  # drop_last=False: the last batch is short
            if max_batches is not None and i >= max_batches:
                break
            idx = order[first:first + batch]
            x = self.matrix[self.starts[idx, None] + self.window]
            y = self.labels[idx, None]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.detach())
        return float(torch.stack(losses).mean())
