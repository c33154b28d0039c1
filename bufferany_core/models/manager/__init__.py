"""`bufferany-models`: every model's official weights, listed, fetched, verified and located.

The models are the catalogues' (`models.catalog.DEPTH_MODELS`, `NORMAL_MODELS`) and the optical-flow
models the stabiliser uses (`flow.backends.RAFT_WEIGHTS`); their files are the weight registry's
(`models.weights`: repository, file, licence, pinned size and sha256). Nothing here runs a model.
"""

from bufferany_core.models.manager.inventory import (
    DEFAULT_FLOW,
    FileState,
    ManagedModel,
    all_models,
    download_models,
    licence_problems,
    model_files,
    select_models,
)
from bufferany_core.models.manager.verify import Check, verify_models

__all__ = [
    "DEFAULT_FLOW",
    "Check",
    "FileState",
    "ManagedModel",
    "all_models",
    "download_models",
    "licence_problems",
    "model_files",
    "select_models",
    "verify_models",
]
