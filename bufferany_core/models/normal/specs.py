"""Registered weights of the normal models (bufferany_core.models.weights)."""

from __future__ import annotations

from bufferany_core.models.normal.configs import PRIOR_WEIGHTS
from bufferany_core.models.weights import WeightSpec, register

# The whole diffusers folder (unet/, vae/, scheduler/, text_encoder/, tokenizer/; about 5 GB in
# float32). The weights derive from Stable Diffusion 2, whose CreativeML Open RAIL++-M use
# restrictions carry over; the model card's own licence could not be checked offline (docs/models.md).
MARIGOLD_E2E_FT_NORMALS = register(
    WeightSpec(
        name=PRIOR_WEIGHTS,
        repo_id="GonzaloMG/marigold-e2e-ft-normals",
        filename="",
        licence="CreativeML Open RAIL++-M (derived from Stable Diffusion 2; confirm on the model card)",
        kind="folder",
    )
)
