"""Building the normal models of the catalogue (`models.catalog.NORMAL_MODELS`): without weights, from
a diffusers folder, or with deterministic random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.normal.configs import (
    DEFAULT_SCHEDULER,
    TEMPORAL_CONFIGS,
    TEXT_TOKENS,
    UNET_CONFIGS,
    VAE_CONFIGS,
)
from bufferany_core.models.normal.marigold import MarigoldNormals, clean_latent_coefficient
from bufferany_core.models.normal.text_embedding import empty_prompt_embedding
from bufferany_core.models.normal.video import BufferAnytimeNormals
from bufferany_core.models.temporal import TemporalBlockConfig, zero_initialised_prefixes
from bufferany_core.models.weights import (
    check_checkpoint_folder,
    deterministic_state_dict,
    deterministic_tensor,
)


def image_model_from_folder(folder: Path) -> MarigoldNormals:
    """Marigold-E2E-FT normals from a diffusers folder (unet/, vae/, scheduler/, and text_encoder/ +
    tokenizer/ or the cached empty-prompt embedding)."""
    check_checkpoint_folder(folder, ("unet", "vae"))  # LFS pointers, web pages, truncated files: named
    # local_files_only: a folder path that is not a diffusers folder must fail here, never be
    # taken for a Hugging Face repository id and fetched.
    try:
        unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", local_files_only=True)
        scheduler_config = DDPMScheduler.load_config(
            str(folder), subfolder="scheduler", local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise MissingWeightsError(
            f"{folder} is not a complete diffusers folder for Marigold normals: {exc}"
        ) from exc
    if unet.config.in_channels != 8 or unet.config.out_channels != 4:
        raise BadArgumentsError(
            f"{folder}/unet takes {unet.config.in_channels} and returns {unet.config.out_channels} channels; "
            f"a Marigold UNet takes 8 (image + normal latents) and returns 4"
        )
    return _assemble(unet, vae, empty_prompt_embedding(folder), scheduler_config)


def build_normal_model(
    name: str | None, *, config: TemporalBlockConfig | None = None
) -> MarigoldNormals | BufferAnytimeNormals:
    """The untrained module for `name` (None: the default normal model) from the size's config
    tables; build it under `torch.device("meta")` to skip allocating it. Its empty-prompt embedding
    is zeros until weights load. `config` (video models only) chooses the temporal blocks; by default
    the size's `TEMPORAL_CONFIGS` entry."""
    entry = get_model_entry("normal", name)
    if config is not None and not entry.video:
        raise BadArgumentsError(f"{entry.name} is an image model: a temporal config applies to the video models only")
    image = _table_image_model(entry.size)
    return video_model(image, config or TEMPORAL_CONFIGS[entry.size]) if entry.video else image


def random_image_model(size: str, *, seed: int) -> MarigoldNormals:
    """Deterministic untrained weights of the `size` config table (tests, demos, benchmarks)."""
    model = _table_image_model(size)
    model.unet.load_state_dict(deterministic_state_dict(model.unet, seed=seed))
    model.vae.load_state_dict(deterministic_state_dict(model.vae, seed=seed))
    shape = (1, TEXT_TOKENS, UNET_CONFIGS[size]["cross_attention_dim"])
    model.text_embedding = deterministic_tensor("empty_prompt_embedding", shape, seed=seed)
    return model


def _table_image_model(size: str) -> MarigoldNormals:
    unet = UNet2DConditionModel(**UNET_CONFIGS[size])
    vae = AutoencoderKL(**VAE_CONFIGS[size])
    text = torch.zeros(1, TEXT_TOKENS, unet.config.cross_attention_dim)
    return _assemble(unet, vae, text, DEFAULT_SCHEDULER)


def video_model(
    image_model: MarigoldNormals, config: TemporalBlockConfig, *, seed: int | None = None
) -> BufferAnytimeNormals:
    """The video model around `image_model`; `seed` fills the temporal blocks with deterministic
    weights except their zero-initialised output projections and sinusoidal time encodings."""
    model = BufferAnytimeNormals(image_model=image_model, temporal_config=config)
    if seed is not None:
        temporal = model.temporal
        keep = zero_initialised_prefixes(temporal) + tuple(
            k for k in temporal.state_dict() if k.endswith(".pe")
        )
        temporal.load_state_dict(deterministic_state_dict(temporal, seed=seed, skip_prefixes=keep))
    return model


def _assemble(
    unet: UNet2DConditionModel, vae: AutoencoderKL, text: torch.Tensor, scheduler_config: dict[str, Any]
) -> MarigoldNormals:
    # The schedule's numbers are needed as Python floats, also while the modules are built on "meta".
    with torch.device("cpu"):
        scheduler = DDPMScheduler.from_config(scheduler_config)
    timestep = scheduler.config.num_train_timesteps - 1  # the trailing single step: t = 999
    coefficient = clean_latent_coefficient(
        alpha_cumprod=float(scheduler.alphas_cumprod[timestep]),
        prediction_type=scheduler.config.prediction_type,
    )
    model = MarigoldNormals(
        unet=unet, vae=vae, text_embedding=text, latent_coefficient=coefficient, timestep=timestep
    )
    return model.eval()
