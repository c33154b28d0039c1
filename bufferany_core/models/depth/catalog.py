"""Transitional: `pipeline/render.py` still reads the depth schedule here; once it asks
`bufferany_core.models.catalog.get_model_entry`, delete this module."""

from bufferany_core.models.catalog import DEFAULT_MODELS, DEPTH_MODELS

DEFAULT_WINDOW = DEPTH_MODELS[DEFAULT_MODELS["depth"]].schedule.window
DEFAULT_OVERLAP = DEPTH_MODELS[DEFAULT_MODELS["depth"]].schedule.overlap
