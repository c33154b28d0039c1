"""pyblish support for bufferany passes: the logic behind the plugins in `pyblish_plugins/`.

Host side (standard library, plus `bufferany_core.client` / `jobs` / `conventions`): `instances`
(what a collected instance holds), `render` (render missing frames through the service or the CLI),
`integrate` (versioned, atomic publishing). Farm side (numpy, OpenImageIO): `checks` (what the
validators test) and `repair`. This module imports none of them.
"""
