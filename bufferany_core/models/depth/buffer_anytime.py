"""Buffer Anytime video depth model: a frozen Depth Anything V2 prior with temporal blocks inserted
between the fusion blocks of its DPT head.

The ViT runs without gradient. The temporal blocks always train; the head trains too when
`train_head` is set, as a copy (`video_head`) so that the untouched prior stays available for the
regularisation loss (`image_forward`). Every temporal block starts as the identity, so at
initialisation `forward` equals `image_forward` on every frame.

Only the temporal part (`temporal_state_dict`: temporal blocks, plus `video_head` when trained) is
saved by this project (`bufferany_core.models.temporal_weights`); the prior keeps loading from the
official Depth Anything V2 files.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.depth.backbone import PATCH_SIZE
from bufferany_core.models.depth.depth_anything import SIZES, DepthAnythingV2, get_size
from bufferany_core.models.depth.dpt import DPTHead, TemporalHook
from bufferany_core.models.depth.preprocess import ImageNetInput
from bufferany_core.models.temporal import TemporalBlock, TemporalBlockConfig

FUSION_POINTS = ("fusion4", "fusion3", "fusion2")
TEMPORAL_PREFIXES = ("temporal_blocks.", "video_head.")
_HEAD_WIDTH = 32  # channels per temporal attention head


@dataclass(frozen=True)
class BufferAnytimeConfig:
    """Everything needed to rebuild the temporal part; saved as JSON beside the temporal weights."""

    prior_size: str = "vits"
    temporal: TemporalBlockConfig = field(default_factory=lambda: TemporalBlockConfig(max_frames=128))
    insert_after: tuple[str, ...] = FUSION_POINTS
    train_head: bool = False

    @classmethod
    def for_size(cls, prior_size: str, *, train_head: bool = False) -> BufferAnytimeConfig:
        size = get_size(prior_size)
        # Heads 32 channels wide, as in the large model: narrower heads (8 channels for the small
        # model's 64 fusion channels) cost up to 3x the attention time for the same FLOPs.
        heads = max(1, size.features // _HEAD_WIDTH)
        return cls(
            prior_size=prior_size,
            temporal=TemporalBlockConfig(
                num_heads=heads, max_frames=128, norm_groups=size.temporal_norm_groups
            ),
            train_head=train_head,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "insert_after": list(self.insert_after)}

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "config") -> BufferAnytimeConfig:
        try:
            config = cls(
                prior_size=str(data["prior_size"]),
                temporal=TemporalBlockConfig.from_dict(data["temporal"], source=source),
                insert_after=tuple(data["insert_after"]),
                train_head=bool(data["train_head"]),
            )
        except (KeyError, TypeError) as exc:
            raise BadArgumentsError(f"{source}: missing or malformed field {exc}") from None
        if config.prior_size not in SIZES:
            raise BadArgumentsError(
                f"{source}: field 'prior_size' {config.prior_size!r} is not one of {sorted(SIZES)}"
            )
        if not set(config.insert_after) <= set(FUSION_POINTS):
            raise BadArgumentsError(f"{source}: field 'insert_after' must name points among {FUSION_POINTS}")
        return config


class BufferAnytimeDepth(ImageNetInput, nn.Module):
    """forward(x (B, T, 3, H, W) ImageNet-normalised (`normalize`), H, W multiples of 14) -> (B, T, H, W)."""

    family = "depth"  # the pass its temporal weights belong to (models.temporal_weights)

    def __init__(self, *, config: BufferAnytimeConfig):
        super().__init__()
        insert_after = config.insert_after
        if (
            not insert_after
            or not set(insert_after) <= set(FUSION_POINTS)
            or len(set(insert_after)) != len(insert_after)
        ):
            raise ValueError(
                f"insert_after must name distinct points among {FUSION_POINTS}, got {insert_after}"
            )
        self.config = config
        self.prior = DepthAnythingV2.from_size(config.prior_size).requires_grad_(False)
        self.insert_after = tuple(insert_after)
        self.max_frames = config.temporal.max_frames
        features = self.prior.depth_head.features
        self.temporal_blocks = nn.ModuleList(
            TemporalBlock.from_config(config.temporal, channels=features) for _ in self.insert_after
        )
        # A trainable copy of the prior's head; it follows the prior's weights (see load_prior_state_dict).
        self.video_head: DPTHead | None = (
            copy.deepcopy(self.prior.depth_head).requires_grad_(True) if config.train_head else None
        )

    # -- weights ------------------------------------------------------------------------------------

    def load_prior_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load official Depth Anything V2 weights (`pretrained.*`, `depth_head.*`) strictly."""
        self.prior.load_state_dict(state, strict=True)
        if self.video_head is not None:
            self.video_head.load_state_dict(self.prior.depth_head.state_dict())

    def temporal_config(self) -> dict:
        """What rebuilds the temporal part (`BufferAnytimeConfig.from_dict`), as JSON."""
        return self.config.to_dict()

    def temporal_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changes: the temporal blocks, and the video head when it trains."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(TEMPORAL_PREFIXES)}

    def load_temporal_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        expected = set(self.temporal_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"temporal weights do not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        self.load_state_dict(state, strict=False)  # strict on the temporal part, checked above

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self.temporal_blocks.parameters())
        if self.video_head is not None:
            params += list(self.video_head.parameters())
        return params

    # -- forward ------------------------------------------------------------------------------------

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(f"expected frames (B, T, 3, H, W), got {tuple(x.shape)}")
        if x.shape[1] > self.max_frames:
            raise ValueError(f"window of {x.shape[1]} frames exceeds the model's {self.max_frames}")
        with torch.no_grad():  # the ViT is frozen and cut from the gradient
            return self.prior.encode(x.flatten(0, 1))

    def _hook(self, num_frames: int) -> TemporalHook:
        blocks = dict(zip(self.insert_after, self.temporal_blocks, strict=True))

        def hook(point: str, features: torch.Tensor) -> torch.Tensor:
            block = blocks.get(point)
            return features if block is None else block(features, num_frames)

        return hook

    def _video(self, tokens: list[torch.Tensor], shape: torch.Size) -> torch.Tensor:
        b, t, _, h, w = shape
        head = self.video_head if self.video_head is not None else self.prior.depth_head
        out = head(tokens, h // PATCH_SIZE, w // PATCH_SIZE, temporal_hook=self._hook(t))
        return out.view(b, t, h, w)

    def _image(self, tokens: list[torch.Tensor], shape: torch.Size) -> torch.Tensor:
        b, t, _, h, w = shape
        with torch.no_grad():
            return self.prior.decode(tokens, h, w).view(b, t, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._video(self._encode(x), x.shape)

    def image_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen prior's per-frame prediction, (B, T, H, W), without gradient."""
        return self._image(self._encode(x), x.shape)

    def forward_with_prior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(video prediction, prior prediction), both (B, T, H, W), sharing one pass of the ViT."""
        tokens = self._encode(x)
        return self._video(tokens, x.shape), self._image(tokens, x.shape)
