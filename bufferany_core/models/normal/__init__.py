"""Normal models: the Marigold-E2E-FT image prior and Buffer Anytime's temporal video model.

`load_normal_predictor(name, *, weights=..., ...)` returns a `PassPredictor` for the pipeline;
`build_normal_model(name)` the bare module. Names: `models.catalog.NORMAL_MODELS`. The modules are
exposed for training: `MarigoldNormals` (normalize / encode / predict_latent / decode),
`BufferAnytimeNormals` (video latents, `trainable_parameters()`).
"""

from bufferany_core.models.normal.build import build_normal_model
from bufferany_core.models.normal.configs import MODEL_AXES
from bufferany_core.models.normal.marigold import MarigoldNormals
from bufferany_core.models.normal.predictor import NormalPredictor, load_normal_predictor
from bufferany_core.models.normal.video import BufferAnytimeNormals

__all__ = [
    "MODEL_AXES",
    "BufferAnytimeNormals",
    "MarigoldNormals",
    "NormalPredictor",
    "build_normal_model",
    "load_normal_predictor",
]
