"""The empty-prompt text embedding Marigold's UNet cross-attends to.

Computed once with the weights folder's CLIP text encoder and cached beside the weights (or, when
that folder is read-only, in the user's cache), so later runs load neither transformers nor the
text encoder (about 1.4 GB for Stable Diffusion 2).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import MissingWeightsError

CACHE_NAME = "bufferany_empty_prompt.safetensors"
# Marigold-E2E-FT's inference code tokenises "" without padding: start and end tokens only.
PADDING = "do_not_pad"


def cache_paths(folder: Path) -> list[Path]:
    """Where the cached embedding may live, in the order they are tried."""
    user_cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bufferany" / "text_embeddings"
    )
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return [folder / CACHE_NAME, user_cache / f"{digest}.safetensors"]


def empty_prompt_embedding(folder: Path) -> torch.Tensor:
    """(1, tokens, dim) float32 embedding of the empty prompt for the diffusers folder `folder`."""
    paths = cache_paths(folder)
    for path in paths:
        if path.is_file():
            return load_file(str(path))["embedding"]
    embedding = compute_empty_prompt_embedding(folder)
    for path in paths:
        try:
            atomic_write(
                path,
                lambda tmp: save_file(
                    {"embedding": embedding}, tmp, metadata={"prompt": "", "padding": PADDING}
                ),
            )
            break
        except OSError:
            continue  # read-only weights folder (e.g. a shared cache): try the user's cache
    return embedding


def compute_empty_prompt_embedding(folder: Path) -> torch.Tensor:
    encoder_dir, tokenizer_dir = folder / "text_encoder", folder / "tokenizer"
    if not (encoder_dir.is_dir() and tokenizer_dir.is_dir()):
        raise MissingWeightsError(
            f"{folder}: no cached empty-prompt embedding ({CACHE_NAME}) and no text_encoder/ and "
            f"tokenizer/ folders to compute it from: copy the complete diffusers folder"
        )
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise MissingWeightsError(
            f"{folder}: computing the empty-prompt embedding once needs the `transformers` package "
            f"(pip install transformers); later runs use the cached {CACHE_NAME}"
        ) from exc
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    tokens = tokenizer("", padding=PADDING, return_tensors="pt").input_ids  # (1, 2): start, end
    encoder = CLIPTextModel.from_pretrained(str(encoder_dir), local_files_only=True).eval()
    with torch.no_grad():
        embedding = encoder(tokens)[0]  # last hidden state, (1, tokens, dim)
    return embedding.float().contiguous()
