"""Champion health without a challenger: policies turn signals into alerts.

A policy file (TOML; ``MLCANARY_POLICY_FILE``) lists rules per model:

    [[policy]]
    name = "drifting"
    model = "churn"
    when = "drift"          # dataset drift ...
    at_least = 3            # ... in at least 3 ...
    of_last = 5             # ... of the last 5 windows
    actions = ["alert"]
    cooldown_seconds = 3600

    [[policy]]
    name = "decaying"
    model = "churn"
    when = "degraded"       # performance worse than the CV baseline, whole 95% interval ...
    margin = 0.02           # ... by at least this much (metric units; default 0)
    metric = "roc_auc"      # judged on this metric (default: accuracy; RMSE for regression)
    at_least = 1
    of_last = 1

When a rule fires (and its cooldown has passed, store-wide: of several watchers on one
store only one acts, and a restarted one does not act again on the same windows), each
action runs and leaves an event
with the signals it rests on. ``retrain`` hands the model to the retrain worker (see
``mlcanary.control.retrain``: the same file's ``[retrain.NAME]`` table says how), with the
log window starting at the first flagged window the rule fired on. ``alert`` posts the
event as JSON to ``MLCANARY_ALERT_URL``, signed with HMAC-SHA256 of the body under
``MLCANARY_ALERT_SECRET`` (header ``X-Mlcanary-Signature: sha256=<hex>``, with the time in
``X-Mlcanary-Timestamp`` and inside the body), so an orchestrator can check it came from
mlcanary and act on it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import model_validator

from mlcanary.bodies import Body, Field, checked
from mlcanary.control.retrain import RetrainPlan, RetrainWorker, Trigger, load_plans
from mlcanary.errors import InvalidInput
from mlcanary.store.deployments import DeploymentLog, Event
from mlcanary.store.signals import Kind, Signal, SignalLog
from mlcanary.types import LOWER_IS_BETTER

Metric = Literal["accuracy", "roc_auc", "f1", "rmse", "mae"]
METRICS: tuple[Metric, ...] = ("accuracy", "roc_auc", "f1", "rmse", "mae")
"""Metrics a performance signal reports (``monitor.performance``)."""

log = logging.getLogger(__name__)

When = Literal["drift", "degraded"]
Action = Literal["alert", "retrain"]
ACTIONS: tuple[Action, ...] = ("alert", "retrain")
SIGNATURE_HEADER = "X-Mlcanary-Signature"
TIMESTAMP_HEADER = "X-Mlcanary-Timestamp"


class Policy(Body):
    """One ``[[policy]]`` rule of a policy file."""

    name: str = Field(description="a string naming the rule")
    model: str = Field(description="a string: the model the rule watches")
    when: When = Field(description="'drift' or 'degraded'")
    at_least: int = Field(3, ge=1, description="a whole number >= 1")
    of_last: int = Field(5, ge=1, description="a whole number >= 1")
    actions: tuple[Action, ...] = Field(
        ("alert",), min_length=1, strict=False,
        description=f"a list of {', '.join(map(repr, ACTIONS))}")
    cooldown_seconds: float = Field(3600.0, ge=0, description="a number >= 0")
    margin: float = Field(0.0, ge=0, description="a number >= 0")
    """``degraded``: the whole 95% interval must lie beyond the baseline by this much (in
    the metric's units); 0 keeps the monitor's own verdict."""
    metric: Metric | None = Field(None, description=f"one of {list(METRICS)}")
    """``degraded``: the metric judged (one the performance signal reports); None: the
    monitor's default (accuracy for classifiers, RMSE for regression)."""

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if self.at_least > self.of_last:
            raise ValueError(f"expected whole numbers 1 <= at_least <= of_last, "
                             f"got {self.at_least}, {self.of_last}")
        for name in ("margin", "metric"):
            if getattr(self, name) and self.when != "degraded":
                raise ValueError(f"'{name}' applies to when = 'degraded' only")
        return self


@dataclass(frozen=True)
class AlertSink:
    """Where alerts go; without a URL they are events only."""

    url: str | None = None
    secret: str | None = None
    timeout: float = 5.0


def policy_rules(settings: Any) -> list[Policy]:
    """The rules of the configured policy file (none without one); a bad file is an error."""
    return [] if settings.policy_file is None else load_policies(settings.policy_file)


def load_policies(path: Path) -> list[Policy]:
    """Read and check a policy file; InvalidInput naming the rule and field otherwise."""
    return load_policy_file(path)[0]


def load_policy_file(path: Path) -> tuple[list[Policy], dict[str, RetrainPlan]]:
    """The rules and the retrain plans of a policy file, checked together."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"policy file '{path}': cannot be read ({exc})") from exc
    unknown = sorted(set(document) - {"policy", "retrain"})
    if unknown:
        raise InvalidInput(
            f"policy file '{path}': unknown tables {unknown}; "
            "expected [[policy]] and [retrain.NAME]"
        )
    rules = document.get("policy", [])
    if not isinstance(rules, list):
        raise InvalidInput(f"policy file '{path}': expected [[policy]] tables")
    policies = [_policy(rule, f"policy file '{path}', rule {i + 1}")
                for i, rule in enumerate(rules)]
    plans = load_plans(document, f"policy file '{path}'", path.resolve().parent)
    for i, policy in enumerate(policies):
        if "retrain" in policy.actions and policy.model not in plans:
            raise InvalidInput(
                f"policy file '{path}', rule {i + 1}: action 'retrain' needs a "
                f"[retrain.{policy.model}] table saying how to retrain '{policy.model}'"
            )
    return policies, plans


def _policy(rule: object, where: str) -> Policy:
    return checked(Policy, rule, where)


def fired(policy: Policy, signals: list[Signal]) -> list[Signal] | None:
    """The champion signals the rule rests on when it fires now, else None."""
    kind = "drift" if policy.when == "drift" else "performance"
    recent = [s for s in signals if s.kind == kind and s.variant == "champion"]
    recent = recent[-policy.of_last:]
    flagged = [s for s in recent if counts(policy, s)]
    return recent if len(flagged) >= policy.at_least else None


def counts(policy: Policy, signal: Signal) -> bool:
    """Whether the signal is one the rule counts (flagged, and beyond the margin)."""
    if policy.when == "drift" or not (policy.margin or policy.metric):
        return signal.flagged
    p = signal.payload.get("performance", {})
    if policy.metric is not None:
        p = signal.payload.get("metrics", {}).get(policy.metric, {})
        if not policy.margin:
            return bool(p.get("degraded", False))
    low, high, baseline = p.get("ci_low"), p.get("ci_high"), p.get("baseline")
    if low is None or high is None or baseline is None:
        return False
    if p.get("metric") in LOWER_IS_BETTER:
        return bool(low > baseline + policy.margin)
    return bool(high < baseline - policy.margin)


def rule_text(policy: Policy) -> str:
    """The rule in words, e.g. 'drift in 3 of the last 5 windows'."""
    margin = f" by more than {policy.margin:g}" if policy.margin else ""
    metric = f" ({policy.metric})" if policy.metric else ""
    return (f"{policy.when}{metric}{margin} in {policy.at_least} of the last "
            f"{policy.of_last} windows")


def policy_states(
    policies: list[Policy], model: str, signals: SignalLog, events: DeploymentLog,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Where each of ``model``'s rules stands: how many recent windows it counts, whether
    it fires now, when it last acted and until when it cools down (for ``status``)."""
    now = time.time() if now is None else now
    states = []
    for policy in (p for p in policies if p.model == model):
        kind: Kind = "drift" if policy.when == "drift" else "performance"
        recent = [s for s in signals.latest(model, kind=kind, last=policy.of_last * 4)
                  if s.variant == "champion"][-policy.of_last:]
        acted = events.last_firing(model, policy.name)
        until = None if acted is None else acted + policy.cooldown_seconds
        states.append({
            "policy": policy.name,
            "rule": rule_text(policy),
            "actions": list(policy.actions),
            "windows": len(recent),
            "counted": sum(counts(policy, s) for s in recent),
            "fires_now": fired(policy, recent) is not None,
            "last_acted": acted,
            "cooling_down_until": until if until is not None and until > now else None,
        })
    return states


class PolicyRunner:
    """Evaluates policies each tick; acts at most once per cooldown per rule, store-wide."""

    def __init__(self, policies: list[Policy], signals: SignalLog, log_: DeploymentLog,
                 sink: AlertSink, retrainer: RetrainWorker | None = None) -> None:
        self.policies = policies
        self.signals = signals
        self.events = log_
        self.sink = sink
        self.retrainer = retrainer
        self._seen: dict[str, int] = {}

    def tick(self, now: float | None = None) -> list[Event]:
        now = time.time() if now is None else now
        out = []
        for policy in self.policies:
            kind: Kind = "drift" if policy.when == "drift" else "performance"
            signals = self.signals.latest(policy.model, kind=kind, last=policy.of_last * 4)
            newest = signals[-1].id if signals else None
            if newest is None or self._seen.get(policy.name) == newest:
                continue  # nothing new since this rule last looked
            self._seen[policy.name] = newest
            basis = fired(policy, signals)
            if basis is None or not self.events.claim(
                policy.model, policy.name, newest, now, policy.cooldown_seconds
            ):
                continue  # quiet, cooling down, or another watcher acted on it
            cause = {
                "policy": policy.name,
                "rule": rule_text(policy),
                "signals": [
                    {"id": s.id, "version": s.version, "end": s.end_ts, "flagged": s.flagged,
                     "counted": counts(policy, s),
                     **({"drift_share": s.payload.get("drift_share"),
                         "drifted_columns": s.payload.get("drifted_columns")}
                        if s.kind == "drift" else s.payload.get("performance", {}))}
                    for s in basis
                ],
            }
            actor = f"policy:{policy.name}"
            if "alert" in policy.actions:
                event = Event(policy.model, "alert", actor, cause, None, None, now)
                delivery = send_alert(self.sink, event)
                event = Event(policy.model, "alert", actor, {**cause, "delivery": delivery},
                              None, None, now)
                self.events.record(event)
                out.append(event)
            if "retrain" in policy.actions:
                since = min(s.start_ts for s in basis if counts(policy, s))
                if self.retrainer is None:
                    event = Event(policy.model, "retrain_failed", actor,
                                  {**cause, "reason": "no retrain worker in this process"},
                                  None, None, now)
                    self.events.record(event)
                elif not self.retrainer.submit(policy.model, Trigger(actor, cause, since)):
                    log.info("policy %s: a retrain of %s is already running", policy.name,
                             policy.model)
        return out


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``timestamp.body`` (the timestamp guards against replays)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def send_alert(sink: AlertSink, event: Event) -> str:
    """POST the alert; returns what happened, for the event (never raises)."""
    if sink.url is None:
        return "no alert URL configured"
    timestamp = str(int(event.ts))
    body = orjson.dumps({"event": event.as_dict(), "timestamp": timestamp},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
    if sink.secret:
        headers[SIGNATURE_HEADER] = signature(sink.secret, timestamp, body)
    request = urllib.request.Request(sink.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=sink.timeout) as resp:
            return f"delivered ({resp.status})"
    except (urllib.error.URLError, OSError) as exc:
        log.warning("alert to %s failed: %s", sink.url, exc)
        return f"failed ({exc})"
