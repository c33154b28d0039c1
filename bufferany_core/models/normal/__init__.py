"""Normal models: the Marigold-E2E-FT image prior and Buffer Anytime's temporal video model.

`load_normal_predictor(name)` returns a `PassPredictor`; the modules are exposed for training:
`MarigoldNormals` (encode / predict_latent / decode), `BufferAnytimeNormals` (video latents,
`trainable_parameters()`), and the temporal weights' save and load functions.
"""

from bufferany_core.models.normal.configs import DEFAULT_NORMAL_MODEL, MODEL_AXES, MODELS
from bufferany_core.models.normal.loader import load_normal_predictor
from bufferany_core.models.normal.marigold import MarigoldNormals
from bufferany_core.models.normal.predictor import NormalPredictor
from bufferany_core.models.normal.temporal_weights import load_temporal_weights, save_temporal_weights
from bufferany_core.models.normal.video import BufferAnytimeNormals

__all__ = [
    "DEFAULT_NORMAL_MODEL",
    "MODEL_AXES",
    "MODELS",
    "BufferAnytimeNormals",
    "MarigoldNormals",
    "NormalPredictor",
    "load_normal_predictor",
    "load_temporal_weights",
    "save_temporal_weights",
]
