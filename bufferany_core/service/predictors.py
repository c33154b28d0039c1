"""The server's predictor cache: the pipeline's own, plus a record of what it has loaded, so
`status` can show which models stay in memory and that a second job did not load them again."""

from __future__ import annotations

import threading
from typing import Any

from bufferany_core.models.api import PassPredictor
from bufferany_core.pipeline.predictors import PredictorCache


class ObservedPredictorCache(PredictorCache):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0  # predictors built since start-up; a cache hit adds nothing
        self._seen: dict[
            int, tuple[PassPredictor, dict[str, Any]]
        ] = {}  # keeps each predictor alive: ids stay unique
        self._seen_lock = threading.Lock()

    def get(self, pass_name, model, **options) -> PassPredictor:  # type: ignore[override]
        predictor = super().get(pass_name, model, **options)
        with self._seen_lock:
            if id(predictor) not in self._seen:
                self.loads += 1
                info = predictor.info
                self._seen[id(predictor)] = (
                    predictor,
                    {
                        "pass": info.pass_name,
                        "model": info.model_id,
                        "device": str(predictor.device),
                        "precision": predictor.precision,
                        "untrained": info.untrained,
                        "processing_size": options.get("processing_size"),
                    },
                )
        return predictor

    def clear(self) -> None:
        super().clear()
        with self._seen_lock:
            self._seen.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._seen_lock:
            return [dict(summary) for _predictor, summary in self._seen.values()]
