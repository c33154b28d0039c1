"""The shot pipeline: windows, alignment to the shot's reference, cross-fades, AOV EXRs, the
`bufferany-render` CLI and farm job files. Entry point: `bufferany_core.pipeline.render.run_render`.

Importing this package imports nothing heavy; `render`, `predictors` and `writer` need torch, numpy
and OpenImageIO, `farm` and `cli` only the standard library until a render starts.
"""
