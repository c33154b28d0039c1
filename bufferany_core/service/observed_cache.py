"""The server's predictor cache: the pipeline's own, described for `status`, so clients see which
models stay in memory and that a second job did not load them again."""

from __future__ import annotations

from typing import Any

from bufferany_core.pipeline.predictor_cache import PredictorCache


class ObservedPredictorCache(PredictorCache):
    def describe(self) -> list[dict[str, Any]]:
        """One summary per predictor still loaded (evicted ones are gone), least recently used first."""
        return [
            {
                "pass": predictor.info.pass_name,
                "model": predictor.info.model_id,
                "device": str(predictor.device),
                "precision": predictor.precision,
                "untrained": predictor.info.untrained,
                "processing_size": key.processing_size,
            }
            for key, predictor in self.entries()
        ]
