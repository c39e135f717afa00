"""Prometheus metrics of one server, in a registry of its own (no process globals)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlcanary.monitor.tap import PredictionTap
from mlcanary.serve.batcher import Observer
from mlcanary.store.database import Store
from mlcanary.store.signals import Signal, SignalLog

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

    def watch_signals(self, store: Store, models: list[str]) -> None:
        """Export the latest drift and performance signals, read from the store at scrape
        time (the monitor runs in its own process and writes them there)."""
        self.registry.register(_SignalCollector(store, models))

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


class _SignalCollector(Collector):
    """Latest signals per model as gauges; the store is read at most every few seconds."""

    CACHE_SECONDS = 5.0

    def __init__(self, store: Store, models: list[str]) -> None:
        self.log = SignalLog(store)
        self.models = models
        self._cached: tuple[float, list[Signal]] = (0.0, [])

    def _latest(self) -> list[Signal]:
        at, signals = self._cached
        if time.monotonic() - at < self.CACHE_SECONDS:
            return signals
        signals = []
        try:
            for model in self.models:
                signals += self.log.latest(model, kind="drift", last=1)
                signals += self.log.latest(model, kind="performance", last=1)
        except Exception:  # a store that is down must not break the scrape
            return self._cached[1]
        self._cached = (time.monotonic(), signals)
        return signals

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "variant", "version"]
        dataset = GaugeMetricFamily(
            "mlcanary_drift_dataset",
            "1 when the latest window drifted at dataset level, else 0.", labels=labels)
        share = GaugeMetricFamily(
            "mlcanary_drift_share",
            "Share of model importance carried by drifted columns in the latest window.",
            labels=labels)
        feature = GaugeMetricFamily(
            "mlcanary_feature_drift",
            "1 when the column drifted in the latest window (its test and effect size).",
            labels=["feature", "model"])
        performance = GaugeMetricFamily(
            "mlcanary_performance", "Task metric on the latest labelled window.",
            labels=["bound", "metric", *labels])
        degraded = GaugeMetricFamily(
            "mlcanary_performance_degraded",
            "1 when the latest labelled window is worse than the CV baseline with confidence.",
            labels=labels)
        for signal in self._latest():
            key = [signal.model, signal.variant, str(signal.version)]
            if signal.kind == "drift":
                dataset.add_metric(key, int(signal.flagged))
                share.add_metric(key, signal.payload["drift_share"])
                drifted = set(signal.payload["drifted_columns"])
                for name in dict.fromkeys(t["feature"] for t in signal.payload["tests"]):
                    feature.add_metric([name, signal.model], int(name in drifted))
            else:
                result = signal.payload["performance"]
                for bound in ("value", "ci_low", "ci_high", "baseline"):
                    if result[bound] is not None:
                        performance.add_metric([bound, result["metric"], *key], result[bound])
                degraded.add_metric(key, int(signal.flagged))
        yield from (dataset, share, feature, performance, degraded)
