"""The three safety nn.Modules of SafeVLM: safety projector, safety tokens, safety head;
and `SafetyMember`, the three that one classifier of a head ensemble needs.

Knows no base: every width comes in through constructor arguments (derived from the base
by `modeling.SafeVLM`). Holds no wiring, no policy and no generation.
"""

from __future__ import annotations

import torch
from torch import nn


class SafetyProjector(nn.Module):
    """Convolutional abstractor (the paper's safety projector): a patch grid of vision
    features (B, C, H, W) -> grid*grid safety embeddings (B, M, hidden_size)."""

    def __init__(self, in_channels: int, hidden_size: int, width: int, grid: int):
        super().__init__()
        self.proj_in = nn.Conv2d(in_channels, width, kernel_size=1)
        # Depthwise-separable residual blocks: the abstractor's locality at a fraction of
        # the weights of full 3x3 convolutions (the shipped checkpoint stays a few MB).
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, kernel_size=3, padding=1, groups=width),
                nn.Conv2d(width, width, kernel_size=1),
                nn.GroupNorm(1, width),
                nn.GELU(),
            )
            for _ in range(2)
        )
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj_out = nn.Sequential(
            nn.Linear(width, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, grid_features: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(grid_features)
        for block in self.blocks:
            x = x + block(x)
        x = self.pool(x).flatten(2).transpose(1, 2)  # (B, M, width)
        return self.proj_out(x)


class SafetyTokens(nn.Module):
    """A learned set of token embeddings (set 1 feeds the head, set 2 the LLM input)."""

    def __init__(self, num_tokens: int, hidden_size: int, init_std: float = 0.02):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(num_tokens, hidden_size) * init_std)

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embeddings.unsqueeze(0).expand(batch_size, -1, -1)


class SafetyHead(nn.Module):
    """Cross-attention from prompt features to [safety tokens set 1; safety embeddings],
    masked mean pooling over the valid query positions, then type and level heads.

    Unlike the authors' code, the padding mask is applied and every valid position is
    pooled (their head read only position 0, the same token for every request)."""

    def __init__(self, hidden_size: int, num_heads: int, num_types: int, num_levels: int,
                 dropout: float = 0.1):
        super().__init__()
        self.query_norm = nn.LayerNorm(hidden_size)
        self.memory_norm = nn.LayerNorm(hidden_size)
        self.attention = nn.MultiheadAttention(hidden_size, num_heads, dropout=dropout,
                                               batch_first=True)
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden_size), nn.Linear(hidden_size, hidden_size), nn.GELU(),
            nn.Dropout(dropout),
        )
        self.type_head = nn.Linear(hidden_size, num_types)
        self.level_head = nn.Linear(hidden_size, num_levels)

    def forward(self, queries: torch.Tensor, query_mask: torch.Tensor,
                memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, T, D), query_mask (B, T) True where valid, memory (B, K, D)
        -> (type_logits (B, num_types), level_logits (B, num_levels))."""
        q = self.query_norm(queries)
        kv = self.memory_norm(memory)
        attended, _ = self.attention(q, kv, kv, need_weights=False)
        x = q + attended  # residual: the prompt's own features reach the heads too
        mask = query_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = pooled + self.mlp(pooled)
        return self.type_head(pooled), self.level_head(pooled)


class SafetyMember(nn.Module):
    """One safety classifier: its own projector, safety tokens set 1 and head. SafeVLM's
    first member is its `safety_projector` / `safety_tokens_head` / `safety_head` (the
    paper's single head); `head_ensemble` > 1 adds members trained independently."""

    def __init__(self, projector: SafetyProjector, tokens: SafetyTokens, head: SafetyHead):
        super().__init__()
        self.safety_projector, self.safety_tokens_head, self.safety_head = projector, tokens, head

    def forward(self, grid: torch.Tensor, queries: torch.Tensor,
                query_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        safety_embeds = self.safety_projector(grid)
        memory = torch.cat([self.safety_tokens_head(safety_embeds.shape[0]), safety_embeds], dim=1)
        return self.safety_head(queries, query_mask, memory)
