"""The stabiliser in a render: which passes it runs on (`--stabilize auto|on|off`), and running it
over a shot so that farm chunks write exactly what one run writes.

Which passes (`decide`): `on` every pass, `off` none, `auto` each pass whose model has no trained
temporal layers (an image prior, a Buffer Anytime model without its `--*-temporal-weights`); passes
of trained video models (Video Depth Anything, trained temporal weights) are left as they come. The
decision depends on the catalogue entry and the job only (not on the weights' values), so a dry run,
the service and the header all state the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import ModelEntry


@dataclass(frozen=True)
class StabilizeChoice:
    """Whether one pass goes through the stabiliser, and why (recorded in the header, printed by --dry-run)."""

    stabilize: bool
    reason: str

    def describe(self) -> str:
        return f"{'stabilised' if self.stabilize else 'not stabilised'} ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {"stabilized": self.stabilize, "reason": self.reason}


def decide(job: RenderJob, entries: dict[str, ModelEntry]) -> dict[str, StabilizeChoice]:
    """Pass -> whether the stabiliser runs on it, for the job's passes (entries: the passes' models)."""
    choices = {}
    for pass_name, entry in entries.items():
        if job.stabilize == "on":
            choices[pass_name] = StabilizeChoice(True, "--stabilize on")
        elif job.stabilize == "off":
            choices[pass_name] = StabilizeChoice(False, "--stabilize off")
        elif getattr(job, f"{pass_name}_temporal_weights"):
            choices[pass_name] = StabilizeChoice(
                False, f"auto: {entry.name} runs with trained temporal weights (--{pass_name}-temporal-weights)"
            )
        elif entry.trained_temporal:
            choices[pass_name] = StabilizeChoice(False, f"auto: {entry.name} has trained temporal layers")
        elif entry.video:
            choices[pass_name] = StabilizeChoice(
                True, f"auto: {entry.name} has untrained temporal layers (no --{pass_name}-temporal-weights)"
            )
        else:
            choices[pass_name] = StabilizeChoice(True, f"auto: {entry.name} is an image model (no temporal layers)")
    return choices
