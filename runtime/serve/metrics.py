"""/metrics in Prometheus text format, on a registry of the server's own (never the process-wide
default one, so two servers in one process, as in the tests, do not collide)."""

from __future__ import annotations

from typing import Any

STAGES = ("capture wait", "decode", "preprocess", "inference", "postprocess")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, hub: Any, batcher: Any):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.frames = Counter("catdog_frames", "Frames the run classified", registry=r)
        self.predictions = Counter("catdog_predictions", "Predictions made", ["route"], registry=r)
        self.errors = Counter("catdog_errors", "Requests or inputs that failed", ["kind"], registry=r)
        self.stage = Histogram("catdog_stage_seconds", "Seconds per item in each stage", ["stage"],
                               buckets=BUCKETS, registry=r)
        self.frame_age = Histogram("catdog_frame_age_seconds", "Live frames: from arrival in the capture thread "
                                   "to the label", buckets=BUCKETS, registry=r)
        self.request = Histogram("catdog_predict_seconds", "POST /api/predict wall time", buckets=BUCKETS,
                                 registry=r)
        viewers = Gauge("catdog_stream_viewers", "MJPEG viewers connected", registry=r)
        viewers.set_function(lambda: hub.viewers)
        depth = Gauge("catdog_predict_queue_depth", "Crops waiting for the batcher", registry=r)
        depth.set_function(lambda: batcher.depth if batcher else 0)
        batches = Gauge("catdog_predict_batches", "Session calls the API's predictions took (batched)", registry=r)
        batches.set_function(lambda: batcher.batches if batcher else 0)
        items = Gauge("catdog_predict_batched_items", "API predictions made through the batcher", registry=r)
        items.set_function(lambda: batcher.items if batcher else 0)

    def observe(self, stage_ms: dict[str, float]) -> None:
        """One frame's stage times (ms): `frame age` to its own histogram, the rest by stage
        (capture wait: waiting for the camera's next frame; decode: the capture thread's CPU)."""
        for stage, ms in stage_ms.items():
            (self.frame_age if stage == "frame age" else self.stage.labels(stage)).observe(ms / 1000.0)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
