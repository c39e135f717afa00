"""Prometheus metrics of one server, in a registry of its own (no process globals)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlcanary.monitor.signals import Signal
from mlcanary.monitor.tap import PredictionTap
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

        variant = ("model", "variant", "version")
        self.dataset_drift = Gauge(
            "mlcanary_drift_dataset",
            "1 when the latest window drifted at dataset level, else 0.",
            variant,
            registry=self.registry,
        )
        self.drift_share = Gauge(
            "mlcanary_drift_share",
            "Share of model importance carried by drifted columns in the latest window.",
            variant,
            registry=self.registry,
        )
        self.feature_drift = Gauge(
            "mlcanary_feature_drift",
            "1 when the column drifted in the latest window (its test and effect size).",
            ("model", "feature"),
            registry=self.registry,
        )
        self.performance = Gauge(
            "mlcanary_performance",
            "Task metric on the latest labelled window.",
            (*variant, "metric", "bound"),
            registry=self.registry,
        )
        self.degraded = Gauge(
            "mlcanary_performance_degraded",
            "1 when the latest labelled window is worse than the CV baseline with confidence.",
            variant,
            registry=self.registry,
        )
        self.windows = Counter(
            "mlcanary_monitor_windows",
            "Windows analysed by the monitor of this process.",
            (*variant, "kind", "flagged"),
            registry=self.registry,
        )

    def record_signal(self, signal: Signal) -> None:
        """Export one new signal as gauges (called from the monitor's thread)."""
        labels = (signal.model, signal.variant, str(signal.version))
        self.windows.labels(*labels, signal.kind, str(signal.flagged).lower()).inc()
        if signal.kind == "drift":
            self.dataset_drift.labels(*labels).set(int(signal.flagged))
            self.drift_share.labels(*labels).set(signal.payload["drift_share"])
            drifted = set(signal.payload["drifted_columns"])
            for test in signal.payload["tests"]:
                self.feature_drift.labels(signal.model, test["feature"]).set(
                    int(test["feature"] in drifted)
                )
            return
        result = signal.payload["performance"]
        for bound in ("value", "ci_low", "ci_high", "baseline"):
            if result[bound] is not None:
                self.performance.labels(*labels, result["metric"], bound).set(result[bound])
        self.degraded.labels(*labels).set(int(signal.flagged))

    def observer(self, model: str) -> Observer:
        """A batcher observer that records batch size and queue time for ``model``."""
        batch, queue = self.batch_size.labels(model), self.queue_time.labels(model)

        def observe(rows: int, waited: float) -> None:
            batch.observe(rows)
            queue.observe(waited)

        return observe

    def watch_prediction_log(self, tap: PredictionTap) -> None:
        """Export the tap's counters, read at scrape time: nothing added to ``put``."""
        self.registry.register(_PredictionLogCollector(tap))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _PredictionLogCollector(Collector):
    def __init__(self, tap: PredictionTap) -> None:
        self.tap = tap

    def collect(self) -> Iterator[Metric]:
        written = CounterMetricFamily(
            "mlcanary_prediction_log_records",
            "Predictions written to the prediction log.",
            labels=("model",),
        )
        for model, n in dict(self.tap.written).items():
            written.add_metric((model,), n)
        dropped = CounterMetricFamily(
            "mlcanary_prediction_log_dropped",
            "Predictions not logged because the buffer was full (database slow or down).",
            labels=("model",),
        )
        for model, n in dict(self.tap.dropped).items():
            dropped.add_metric((model,), n)
        yield written
        yield dropped
        yield CounterMetricFamily(
            "mlcanary_prediction_log_write_failures",
            "Prediction log writes that failed (their records are kept and retried).",
            value=self.tap.failures,
        )
        yield GaugeMetricFamily(
            "mlcanary_prediction_log_buffer_records",
            "Predictions held in memory, waiting to be written.",
            value=self.tap.depth,
        )
