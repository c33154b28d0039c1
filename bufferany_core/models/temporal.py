"""Temporal attention block: self-attention over the frames of a window, at every pixel.

Used between the spatial layers of an image model (DPT fusion blocks for depth, UNet blocks for
normals) to turn it into a video model. The block works on frames flattened into the batch,
(B*T, C, H, W), which is how image models carry a window, and is residual with a zero-initialised
output projection: a freshly built block is the identity, so the video model starts as its image model.

The submodule names follow the motion modules of Video Depth Anything (themselves from AnimateDiff),
so its official checkpoints load with `strict=True`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from bufferany_core.errors import BadArgumentsError

# Pixels' sequences go through the transformer in chunks of about this many tokens (pixels x
# frames): the results are the same bit for bit, the intermediates stay small. On the CPU the
# feed-forward's (tokens, 8 x channels) hidden layer then stays under glibc's 32 MiB mmap ceiling
# (up to 64 channels), so its buffer is reused instead of page-faulted in anew on every call; on a
# GPU the chunks only bound the memory of long windows, and are large enough for launches not to count.
_CHUNK_TOKENS = {"cpu": 2**13}
_CHUNK_TOKENS_ACCELERATOR = 2**18


@dataclass(frozen=True)
class TemporalBlockConfig:
    """Hyperparameters of one temporal block (the channel count comes from where it is inserted)."""

    num_heads: int = 8
    num_layers: int = 1  # transformer layers per block
    attention_per_layer: int = 2  # temporal self-attentions per layer, each with its own pre-norm
    max_frames: int = 32  # length of the positional encoding over time: the longest window
    norm_groups: int = 32  # GroupNorm groups at the block's input
    ff_mult: int = 4  # feed-forward width, in multiples of the channel count

    @classmethod
    def from_dict(cls, data: object, *, source: str) -> TemporalBlockConfig:
        """The config saved as JSON (`dataclasses.asdict`) in a temporal weights file, checked."""
        if not isinstance(data, Mapping):
            raise BadArgumentsError(f"{source}: field 'temporal' must be an object, got {data!r}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise BadArgumentsError(f"{source}: unknown temporal block fields {unknown}")
        return cls(**data)


class TimePositionalEncoding(nn.Module):
    """Adds a sinusoidal encoding of the frame index (kept as a buffer, as the official checkpoints do)."""

    def __init__(self, *, dim: int, max_frames: int):
        super().__init__()
        position = torch.arange(max_frames, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_frames, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, C)
        frames = x.shape[1]
        if frames > self.pe.shape[1]:
            raise ValueError(
                f"window of {frames} frames is longer than the temporal encoding ({self.pe.shape[1]} frames)"
            )
        return x + self.pe[:, :frames].to(x.dtype)


class TemporalSelfAttention(nn.Module):
    """Multi-head self-attention along the frame axis of (N, T, C) sequences."""

    def __init__(self, *, dim: int, num_heads: int, max_frames: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])  # a list only for the official key `to_out.0`
        self.pos_encoder = TimePositionalEncoding(dim=dim, max_frames=max_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, C)
        n, t, c = x.shape
        x = self.pos_encoder(x)
        # One matmul for the three projections (kept as separate weights for the official keys).
        qkv_weight = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])
        qkv = F.linear(x, qkv_weight).view(n, t, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N, heads, T, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(n, t, c))


class GEGLUFeedForward(nn.Module):
    """Linear -> GELU-gated linear unit -> linear."""

    def __init__(self, *, dim: int, mult: int):
        super().__init__()
        hidden = dim * mult
        # Indices 0 and 2 are the official key layout (`net.0.proj`, `net.2`); index 1 carries no weights.
        self.net = nn.Sequential(_GEGLU(dim_in=dim, dim_out=hidden), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _GEGLU(nn.Module):
    def __init__(self, *, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class TemporalTransformerLayer(nn.Module):
    """Pre-norm residual temporal self-attentions followed by a pre-norm residual feed-forward."""

    def __init__(self, *, dim: int, num_heads: int, attention_blocks: int, max_frames: int, ff_mult: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            TemporalSelfAttention(dim=dim, num_heads=num_heads, max_frames=max_frames)
            for _ in range(attention_blocks)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attention_blocks))
        self.ff = GEGLUFeedForward(dim=dim, mult=ff_mult)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, C)
        # In-place residual adds onto fresh outputs: one allocation less each, same sums.
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attention(norm(x)).add_(x)
        return self.ff(self.ff_norm(x)).add_(x)


class TemporalBlock(nn.Module):
    """Residual temporal transformer over the frames of a window, applied independently at each pixel.

    `forward(x, num_frames)` takes frames flattened into the batch, x: (B*T, C, H, W), and returns
    the same shape. Its output projection starts at zero, so a new block returns its input.
    """

    def __init__(
        self,
        *,
        channels: int,
        num_heads: int = 8,
        num_layers: int = 1,
        attention_per_layer: int = 2,
        max_frames: int = 32,
        norm_groups: int = 32,
        ff_mult: int = 4,
    ):
        super().__init__()
        if channels % norm_groups:
            raise ValueError(f"{channels} channels cannot be split into {norm_groups} normalisation groups")
        self.norm = nn.GroupNorm(num_groups=norm_groups, num_channels=channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerLayer(
                dim=channels,
                num_heads=num_heads,
                attention_blocks=attention_per_layer,
                max_frames=max_frames,
                ff_mult=ff_mult,
            )
            for _ in range(num_layers)
        )
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    @classmethod
    def from_config(cls, config: TemporalBlockConfig, *, channels: int) -> TemporalBlock:
        return cls(
            channels=channels,
            num_heads=config.num_heads,
            num_layers=config.num_layers,
            attention_per_layer=config.attention_per_layer,
            max_frames=config.max_frames,
            norm_groups=config.norm_groups,
            ff_mult=config.ff_mult,
        )

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        if x.ndim != 4 or x.shape[0] % num_frames:
            raise ValueError(f"expected (B*T, C, H, W) with T={num_frames} frames, got {tuple(x.shape)}")
        bt, c, h, w = x.shape
        b = bt // num_frames
        normed = self.norm(x).view(b, num_frames, c, h, w)
        chunk = _CHUNK_TOKENS.get(x.device.type, _CHUNK_TOKENS_ACCELERATOR)
        rows = max(1, chunk // (b * w * num_frames))
        deltas = [self._delta(normed[..., top : top + rows, :]) for top in range(0, h, rows)]
        delta = torch.cat(deltas, dim=3) if len(deltas) > 1 else deltas[0]
        return x + delta.reshape(bt, c, h, w)

    def _delta(self, normed: torch.Tensor) -> torch.Tensor:
        """(B, T, C, rows, W) normalised features -> the block's residual, same shape (a view)."""
        b, t, c, h, w = normed.shape
        # -> (B*rows*W, T, C): one sequence over time per pixel, in a single copy.
        tokens = self.proj_in(normed.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c))
        for layer in self.transformer_blocks:
            tokens = layer(tokens)
        return self.proj_out(tokens).view(b, h, w, t, c).permute(0, 3, 4, 1, 2)


def zero_initialised_prefixes(module: nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the output projections of every `TemporalBlock` inside `module`.

    Pass them as `skip_prefixes` to `weights.deterministic_state_dict` so that random weights keep
    the video model equal to its image model."""
    return tuple(
        f"{name}.proj_out." if name else "proj_out."
        for name, sub in module.named_modules()
        if isinstance(sub, TemporalBlock)
    )
