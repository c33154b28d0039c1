"""One config table per model size (the sizes of `models.catalog.NORMAL_MODELS`).

"sd2" is the Stable Diffusion 2 architecture Marigold-E2E-FT uses (real weights bring their own
config from the diffusers folder; the table builds random ones of the same shape). "tiny" runs the
whole pipeline and training on a CPU in seconds, with random weights only.
"""

from __future__ import annotations

from typing import Any

from bufferany_core.models.temporal import TemporalBlockConfig

# The axis convention of the normals Marigold-E2E-FT decodes, for outward normals (docs/models.md
# explains how this was established from the E2E-FT training data code and the DSINE benchmark).
MODEL_AXES = "x-left y-up z-towards-camera"

UNET_CONFIGS: dict[str, dict[str, Any]] = {
    "sd2": dict(
        sample_size=96,
        in_channels=8,  # RGB latent + normal latent
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20),  # diffusers' historical name: these are head counts
        cross_attention_dim=1024,
        use_linear_projection=True,
        norm_num_groups=32,
    ),
    "tiny": dict(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 4),
        cross_attention_dim=32,
        use_linear_projection=True,
        norm_num_groups=32,
    ),
}

VAE_CONFIGS: dict[str, dict[str, Any]] = {
    "sd2": dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=768,
        scaling_factor=0.18215,
    ),
    # Four levels like the real VAE: latents are 1/8 of the image, as the padding rule assumes.
    "tiny": dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    ),
}

# Shape of the empty-prompt embedding the UNet cross-attends to: (1, tokens, cross_attention_dim).
# Two tokens (start and end of text) because Marigold-E2E-FT's inference code encodes "" unpadded.
TEXT_TOKENS = 2

# Stable Diffusion 2's noise schedule; a real folder's scheduler/scheduler_config.json replaces it.
DEFAULT_SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
)

TEMPORAL_CONFIGS: dict[str, TemporalBlockConfig] = {
    "sd2": TemporalBlockConfig(num_heads=8, num_layers=1, max_frames=32, norm_groups=32),
    "tiny": TemporalBlockConfig(num_heads=4, num_layers=1, max_frames=32, norm_groups=32),
}
