"""Prometheus metrics of one server, in a registry of its own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlcanary.serve.batcher import Observer

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServerMetrics:
    """Request counts and latencies by model, version, endpoint and status; batching."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version", "endpoint", "status")
        self.requests = Counter(
            "mlcanary_requests", "Requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "mlcanary_request_seconds",
            "Time from request to response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlcanary_requests_in_flight", "Requests being handled.", registry=self.registry
        )
        self.queue_time = Histogram(
            "mlcanary_queue_seconds",
            "Time a request waited for its batch.",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mlcanary_batch_rows",
            "Rows per predict call.",
            ("model",),
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "mlcanary_model_load_seconds",
            "Time to load a model version.",
            ("model", "version"),
            registry=self.registry,
        )

    def observer(self, model: str) -> Observer:
        """A batcher observer that records batch size and queue time for ``model``."""
        batch, queue = self.batch_size.labels(model), self.queue_time.labels(model)

        def observe(rows: int, waited: float) -> None:
            batch.observe(rows)
            queue.observe(waited)

        return observe

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
