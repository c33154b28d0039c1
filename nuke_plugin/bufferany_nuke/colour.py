"""What the models see: sRGB-encoded pixels, whatever the script's OCIO config and working space.

The plate is converted inside the Group (OCIOColorSpace `ToModelSRGB`, from the working space to the
config's sRGB texture space) before the cache Write renders it raw, and the job says `srgb_tx`, the
server's name for the same encoding. Three cases (main thread):

- default: convert in Nuke, from `root.workingSpaceLUT` (ACEScg under ACES configs, linear under
  nuke-default) to the first of SRGB_NAMES the config has (or the "sRGB colour space" knob);
- "plate is display-referred sRGB" ticked: no conversion, the job says `srgb_tx`;
- the job's "input colorspace" knob filled: no conversion, the raw working-space pixels go to the
  server, which converts from that name in its own (built-in ACES) config.
"""

from __future__ import annotations

from dataclasses import dataclass

import nuke

from bufferany_core.errors import BadArgumentsError

SERVER_SRGB = "srgb_tx"  # the server's built-in config: "sRGB Encoded Rec.709 (sRGB)"
# sRGB texture (encoding only, no view transform) in the configs Nuke ships and studios use
SRGB_NAMES = (
    "sRGB Encoded Rec.709 (sRGB)",  # OCIO 2.2+ cg/studio configs
    "sRGB - Texture",  # fn-nuke_cg-config / studio-config v1.0.0 (Nuke 14+)
    "Utility - sRGB - Texture",  # ACES 1.x OCIO configs
    "Input - Generic - sRGB - Texture",
    "sRGB",  # nuke-default
    "srgb_tx",
    "srgb_texture",
)


@dataclass(frozen=True)
class ColourPlan:
    convert: bool  # the OCIOColorSpace runs
    source: str  # the script's working space
    target: str  # the config's sRGB space
    config: str  # which config (for the cache key)
    job_colorspace: str | None  # the job's input_colorspace

    def key(self) -> list[str | bool | None]:
        return [self.convert, self.source, self.target, self.config, self.job_colorspace]


def working_space() -> str:
    knob = nuke.root().knob("workingSpaceLUT")
    value = str(knob.value()).strip() if knob is not None else ""
    return value or "scene_linear"


def config_name() -> str:
    root = nuke.root()
    chosen = root.knob("OCIO_config")
    name = str(chosen.value()) if chosen is not None else "nuke-default"
    if name == "custom":
        custom = root.knob("customOCIOConfigPath")
        name = f"custom:{custom.value() if custom is not None else ''}"
    return name


def plan(group: nuke.Node, job_colorspace: str | None) -> ColourPlan:
    """The conversion for `group`'s next Generate; raises BadArgumentsError naming the knob to set."""
    config = config_name()
    source = working_space()
    if job_colorspace:  # explicit: the server converts raw working-space pixels from that name
        return ColourPlan(False, source, "", config, job_colorspace)
    if bool(group["plate_is_srgb"].value()):
        return ColourPlan(False, source, "", config, SERVER_SRGB)
    wanted = str(group["model_colorspace"].value()).strip()
    names = [str(n) for n in nuke.getOcioColorSpaces()]
    if wanted:
        if names and wanted not in names:
            raise BadArgumentsError(
                f"{group.fullName()}: knob 'sRGB colour space': {wanted!r} is not in the OCIO config {config}"
            )
        target = wanted
    else:
        found = next((n for n in SRGB_NAMES if n in names), None)
        if found is None:
            raise BadArgumentsError(
                f"{group.fullName()}: the OCIO config {config} has no sRGB texture colour space "
                f"({', '.join(SRGB_NAMES[:3])}, ...): name one in the knob 'sRGB colour space'"
            )
        target = found
    return ColourPlan(source != target, source, target, config, SERVER_SRGB)


def apply(node: nuke.Node, colour: ColourPlan) -> None:
    """Set the internal OCIOColorSpace for `colour` (main thread)."""
    node["disable"].setValue(not colour.convert)
    if colour.convert:
        node["in_colorspace"].setValue(colour.source)
        node["out_colorspace"].setValue(colour.target)
