"""Rollouts against real server processes: canary, automatic rollback, promotion, stickiness."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.control.gates import DIVERGENCE_PSI
from mlcanary.demo import make_churn
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog, Event
from mlcanary.store.traffic import TrafficLog
from mlcanary.train.fit import train
from mlcanary.train.publish import publish
from mlcanary.train.spec import TrainSpec
from tests.conftest import cli_in_process, cli_runner, with_registry
from tests.control.faults import Faulty
from tests.serve.conftest import niceness, one_watcher_at, running_server
from tests.serve.test_swap import request_body
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.longest]  # real servers through whole rollouts

ENV = {
    "MLCANARY_POLL_SECONDS": "0.5",
    "MLCANARY_MONITOR_SECONDS": "0.5",
    "MLCANARY_LOG_FLUSH_SECONDS": "0.2",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 champion, v2 trained on inverted labels (a broken challenger), v3 like v1;
    v4 like v1 but failing 20% of its calls, v5 like v1 but five times slower per call."""
    root = tmp_path_factory.mktemp("rollout")
    home = with_registry(root / "home")
    frame = make_churn(2000, seed=31)
    settings = Settings(home=home)
    registry = ModelRegistry(settings)
    faults = {4: {"error_rate": 0.2}, 5: {"slowdown": 5.0}}
    for version, labels in ((1, frame["churned"]), (2, 1 - frame["churned"]),
                            (3, frame["churned"]), (4, frame["churned"]),
                            (5, frame["churned"])):
        path = root / f"v{version}.csv"
        frame.assign(churned=labels).to_csv(path, index=False)
        spec = TrainSpec.parse(data=path, target="churned", name="churn", model="logistic",
                               folds=3)
        result = train(spec, settings)
        if version in faults:
            frozen = result.pipeline.estimator
            frozen.estimator = Faulty(frozen.estimator, **faults[version])
        publish(result, registry, "<html></html>")
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "home"
    shutil.copytree(template, target)
    return target


CLIENT_RATE = 60.0
"""Requests a second per client: three clients give a 4 s interval ~700 requests, many
times what the gates need, and leave the CPU to the server and the controller (unpaced,
the clients and the server they saturated took both cores of the machine)."""

Answer = tuple[int, str, str]
"""(status, variant, version) of one request."""


@dataclass
class Traffic:
    """Clients sending one-row requests until stopped; every answer is kept, with the
    time its request was sent."""

    url: str
    rows: pd.DataFrame
    answers: list[Answer] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    heavy_key: str | None = None
    """The first client sends every request under this one key (a heavy hitter)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    rate: float = CLIENT_RATE
    """Requests a second each client sends at most."""

    def run(self, client: int = 0) -> None:
        i = client * len(self.rows) // 3  # clients replay different rows: windows stay iid
        due = time.monotonic()
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            due = max(due, time.monotonic()) + 1 / self.rate  # no catching up in bursts
            row = self.rows.iloc[[i % len(self.rows)]]
            key = self.heavy_key if client == 0 and self.heavy_key else uuid.uuid4().hex
            at = time.monotonic()
            answer = send(self.url, row, key=key)
            with self.lock:
                self.answers.append(answer)
                self.sent.append(at)
            i += 1

    def sent_after(self, moment: float) -> list[Answer]:
        with self.lock:
            return [a for a, at in zip(self.answers, self.sent, strict=True) if at > moment]

    def settled(self, ok: Callable[[Answer], bool], what: str, count: int = 20) -> list[Answer]:
        """Wait until the last answers all pass ``ok`` (the servers have followed), then
        return ``count`` or more answers to requests sent after that moment."""
        wait_until(lambda: len(self.answers) >= 10 and all(map(ok, self.answers[-10:])),
                   what=what)
        moment = time.monotonic()
        return wait_until(lambda: (later := self.sent_after(moment)) and len(later) >= count
                          and later, what=f"{count} answers after {what}")


def send(url: str, rows: pd.DataFrame, key: str,
         request_id: str | None = None) -> tuple[int, str, str]:
    """(status, variant, version) of one V2 request."""
    body = request_body(rows)
    if request_id is not None:
        body = json.dumps({**json.loads(body), "id": request_id}).encode()
    request = urllib.request.Request(
        f"{url}/v2/models/churn/infer", body,
        {"Content-Type": "application/json", "X-Mlcanary-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            body = json.loads(resp.read())
            assert body["parameters"]["variant"] == resp.headers["X-Mlcanary-Variant"]
            return resp.status, body["parameters"]["variant"], body["model_version"]
    except urllib.error.HTTPError as exc:
        return exc.code, "", ""
    except (OSError, http.client.HTTPException):
        # No server there (it died, or is not up yet), or it died mid-answer (a SIGKILL
        # between the headers and the body: IncompleteRead): no status at all.
        return 0, "", ""


@contextlib.contextmanager
def traffic(url: str, clients: int = 3, heavy_key: str | None = None,
            seed: int = 32) -> Iterator[Traffic]:
    """Rows like the reference, each sent once (for 6,000 requests): a row sent twice in one
    window is not an independent draw, and the drift tests would read it as drift."""
    rows = make_churn(6000, seed=seed).drop(columns="churned")
    load = Traffic(url, rows, heavy_key=heavy_key)
    threads = [threading.Thread(target=load.run, args=(i,), daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)


def wait_for_status(home: Path, status: str, timeout: float = 240) -> Deployment:
    """On a machine busy with other tests even a normal-priority controller's checks come
    late, so the wait is generous (it returns as soon as it can)."""
    return wait_for(home, lambda: deployment_of(home).status == status, timeout)


def events(home: Path) -> list[dict[str, object]]:
    """`mlcanary events churn --json`, in this process: tests poll it while the server under
    test needs the CPU (a new interpreter would take seconds of it each time)."""
    result = cli_in_process(home)("events", "churn", "--json")
    assert result.code == 0, result.stderr
    return list(json.loads(result.stdout))


def test_an_inverted_challenger_is_rolled_back_and_no_request_fails(home: Path) -> None:
    with running_server(home, ["churn"], **ENV) as server, traffic(server.url) as load:
        if Path("/proc/self/stat").exists():  # the monitor yields the CPU, the controller not
            one_watcher_at(server.proc.pid)
        started = cli_runner(home)("deploy", "churn", "--challenger", "2", "--steps", "50,100",
                                   "--interval", "4s", "--max-failures", "2")
        assert started.code == 0, started.stderr
        wait_for_status(home, "rolled_back")
        later = load.settled(lambda a: a[1] == "champion", "the servers to follow the rollback")
    statuses = Counter(status for status, _, _ in load.answers)
    assert set(statuses) == {200}, statuses
    variants = Counter(variant for _, variant, _ in load.answers)
    assert variants["challenger"] > 0
    assert {v for _, v, _ in later} == {"champion"}
    kinds = [(e["kind"], e["actor"]) for e in events(home)]
    assert kinds[0] == ("deploy", "user") and kinds[-1] == ("rollback", "policy:rollout")
    assert sum(kind == "check_failed" for kind, _ in kinds) <= 1  # max_failures = 2
    gates = events(home)[-1]["cause"]["gates"]  # type: ignore[index]
    (divergence,) = [g for g in gates if g["gate"] == "divergence"]
    assert divergence["passed"] is False and divergence["psi"] >= DIVERGENCE_PSI
    registry = ModelRegistry(Settings(home=home))
    assert registry.alias_version("churn", "champion") == 1
    assert registry.alias_version("churn", "challenger") is None


@pytest.mark.parametrize(("version", "gate", "reason"), [
    (4, "fast", "error rate"),
    (5, "fast", "latency"),
])
def test_a_failing_or_slow_challenger_is_rolled_back_after_max_failures(
    home: Path, version: int, gate: str, reason: str
) -> None:
    # The faulty versions can only be served natively: the champion too, so that the fault
    # is the only difference (a faster runtime would make every challenger look slow).
    env = {**ENV, "MLCANARY_RUNTIME": "native"}
    with running_server(home, ["churn"], **env) as server, traffic(server.url) as load:
        started = cli_in_process(home)("deploy", "churn", "--challenger", str(version), "--steps",
                                       "50,100", "--interval", "4s", "--max-failures", "2")
        assert started.code == 0, started.stderr
        rolled_back = wait_for_status(home, "rolled_back")
        later = load.settled(lambda a: a[2] == "1", "the servers to follow the rollback")
    assert rolled_back.champion == 1
    trail = events(home)
    checks = [e for e in trail if e["kind"] in ("check_failed", "rollback")]
    assert [e["kind"] for e in checks] == ["check_failed", "rollback"]  # max_failures = 2
    for event in checks:
        (failed,) = [g for g in event["cause"]["gates"] if g["gate"] == gate]  # type: ignore[index]
        assert failed["passed"] is False and reason in failed["reason"], failed
    # The champion never failed a request; after the rollback nothing fails at all.
    champion = [status for status, variant, _ in load.answers if variant == "champion"]
    assert set(champion) == {200}
    assert {status for status, _, _ in later} == {200}
    assert {version for _, _, version in later} == {"1"}


def test_a_heavy_hitter_key_skews_the_split_and_the_rollout_pauses_unpromoted(
    home: Path,
) -> None:
    """One client in three sends every request under one key: sticky assignment sends all
    of it to one variant, the observed split departs from 50/50, and SRM stops the test."""
    with running_server(home, ["churn"], **ENV) as server, traffic(
        server.url, heavy_key="bot-1"
    ) as load:
        started = cli_in_process(home)("deploy", "churn", "--challenger", "3", "--strategy", "ab",
                                       "--weights", "50,50", "--interval", "3s")
        assert started.code == 0, started.stderr
        paused = wait_for_status(home, "paused")
    assert {status for status, _, _ in load.answers} == {200}
    (pause,) = [e for e in events(home) if e["kind"] == "pause"]
    (srm,) = pause["cause"]["gates"]  # type: ignore[index]
    assert srm["gate"] == "srm" and srm["passed"] is False and srm["p_value"] < 0.001
    observed = srm["observed"]
    assert abs(observed["champion"] - observed["challenger"]) > 0.2 * sum(observed.values())
    assert paused.champion == 1
    assert ModelRegistry(Settings(home=home)).alias_version("churn", "champion") == 1
    assert not [e for e in events(home) if e["kind"] == "promote"]


def test_a_good_challenger_survives_a_restart_and_is_promoted(home: Path) -> None:
    with running_server(home, ["churn"], **ENV) as server, traffic(server.url) as load:
        started = cli_in_process(home)("deploy", "churn", "--challenger", "3", "--steps",
                                       "20,50,100", "--interval", "4s")
        assert started.code == 0, started.stderr
        wait_for(home, lambda: any(e["kind"] == "step" for e in events(home)))
        load.stop.set()
    steps_before = [e for e in events(home) if e["kind"] == "step"]
    assert len(steps_before) >= 1, [(e["kind"], e["cause"]) for e in events(home)]
    # A new process over the same store resumes where the store says: no step lost or redone.
    with running_server(home, ["churn"], **ENV) as server, traffic(server.url) as load:
        promoted = wait_for_status(home, "promoted")
        later = load.settled(lambda a: a[2] == "3", "the servers to follow the promotion")
    assert promoted.champion == 1 and promoted.challenger == 3
    assert {status for status, _, _ in load.answers} == {200}
    assert {version for _, _, version in later} == {"3"}
    steps = [e["after"]["weights"]["challenger"] for e in events(home)  # type: ignore[index]
             if e["kind"] == "step"]
    assert steps == [50.0, 100.0]  # from 20: each step once, across the restart
    assert ModelRegistry(Settings(home=home)).alias_version("churn", "champion") == 3


def test_a_sound_challenger_passes_every_check_across_sigkills_and_bursts(
    home: Path,
) -> None:
    """The server dies mid-canary (SIGKILL: no flush, no goodbye), at 50% and again at 100%;
    each new process meets a burst of the requests queued meanwhile on a cold server. With
    ``--max-failures 1`` one failed check would roll back: a twin of the champion must pass
    every one."""
    started = cli_in_process(home)("deploy", "churn", "--challenger", "3", "--steps", "50,100",
                                   "--interval", "4s", "--max-failures", "1")
    assert started.code == 0, started.stderr
    rows = make_churn(1800, seed=35).drop(columns="churned")
    burst: list[tuple[int, str, str]] = []
    answered: list[tuple[int, str, str]] = []
    lives = iter([(0, 32), (600, 36), (1200, 37)])  # new rows each life: windows stay iid

    def until(done: Callable[[], bool]) -> Deployment:
        """Serve with a burst first, then steady traffic, until ``done``; then SIGKILL."""
        first, seed = next(lives)
        with running_server(home, ["churn"], **ENV) as server:
            with concurrent.futures.ThreadPoolExecutor(16) as pool:  # the queue, at once
                burst.extend(pool.map(lambda i: send(server.url, rows.iloc[[i]], key=f"q{i}"),
                                      range(first, first + 600)))
            with traffic(server.url, seed=seed) as load:
                deployment = wait_for(home, done)
                children = child_pids(server.proc.pid)
                server.proc.kill()
                server.proc.wait(timeout=10)
            answered.extend(a for a in load.answers if a[0] != 0)  # 0: sent to a dead server
        for pid in children:  # the kernel ends them with the server (parent-death signal)
            wait_gone(pid)
        return deployment

    until(lambda: Counter(v for _, v, _ in burst)["challenger"] > 0)  # at 50%, unchecked
    until(lambda: any(e["kind"] == "step" for e in events(home)))  # at 100%, unchecked
    final = until(lambda: deployment_of(home).status in {"promoted", "rolled_back"})
    assert {status for status, _, _ in burst + answered} == {200}
    trail = events(home)
    assert final.status == "promoted", [(e["kind"], e["cause"]) for e in trail]
    assert [e["kind"] for e in trail] == ["deploy", "step", "promote"]
    fast = [g for e in trail[1:] for g in e["cause"]["gates"]  # type: ignore[index]
            if g["gate"] == "fast"]
    assert [g["passed"] for g in fast] == [True, True], fast


def deployment_of(home: Path) -> Deployment:
    with Store(Settings(home=home).store_uri) as store:
        deployment = DeploymentLog(store).get("churn")
    assert deployment is not None
    return deployment


def wait_for(home: Path, done: Callable[[], bool], timeout: float = 240) -> Deployment:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return deployment_of(home)
        time.sleep(0.5)
    trail = [(e["kind"], e["cause"]) for e in events(home)]
    raise AssertionError(f"the rollout did not get there in {timeout} s: {trail}")


def loaded(url: str, version: int) -> bool:
    """Whether the server at ``url`` has ``version`` loaded (its V2 ready answers 200); it
    learns the deployment in the same poll, before it loads the challenger."""
    try:
        with urllib.request.urlopen(
            f"{url}/v2/models/churn/versions/{version}/ready", timeout=10
        ) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def child_pids(pid: int) -> list[int]:
    """PIDs of the processes whose parent is ``pid`` (Linux; none elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if niceness(stat)[0] == pid:
                found.append(int(stat.parent.name))
    return found


def wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} outlived its server")


def test_the_same_key_gets_the_same_variant_on_every_replica(home: Path) -> None:
    started = cli_in_process(home)("deploy", "churn", "--challenger", "3", "--strategy", "ab",
                                   "--weights", "50,50", "--interval", "1h")
    assert started.code == 0, started.stderr
    rows = make_churn(5, seed=33).drop(columns="churned")
    with running_server(home, ["churn"], **ENV) as one, running_server(
        home, ["churn"], **ENV
    ) as two:
        for server in (one, two):
            wait_until(lambda url=server.url: loaded(url, 3), what="the challenger to load")
        keys = [f"customer-{i}" for i in range(40)]
        first = {k: send(one.url, rows.iloc[[0]], k)[1] for k in keys}
        again = {k: send(two.url, rows.iloc[[1]], k)[1] for k in keys}
    assert first == again
    assert set(first.values()) == {"champion", "challenger"}


def test_a_shadow_challenger_never_answers_and_its_agreement_is_reported(home: Path) -> None:
    """v2 learned inverted labels: clients only see the champion; status shows the gap."""
    started = cli_in_process(home)("deploy", "churn", "--challenger", "2", "--strategy", "shadow",
                                   "--interval", "1h")
    assert started.code == 0, started.stderr
    frame = make_churn(120, seed=34)
    ids = []
    with running_server(home, ["churn"], **ENV) as server:
        wait_until(lambda: loaded(server.url, 2), what="the challenger to load")
        for i in range(len(frame)):
            status, variant, version = send(server.url, frame.drop(columns="churned").iloc[[i]],
                                            key=f"k{i}", request_id=f"req-{i}")
            assert (status, variant, version) == (200, "champion", "1")
            ids.append(f"req-{i}")
        labels = [{"id": id_, "label": int(y)} for id_, y in zip(ids, frame["churned"],
                                                                   strict=True)]
        request = urllib.request.Request(
            f"{server.url}/v2/models/churn/feedback", json.dumps(labels).encode(),
            {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.status == 200

        def reported() -> dict[str, Any] | None:
            result = cli_in_process(home)("status", "churn", "--json")
            assert result.code == 0, result.stderr
            shadow: dict[str, Any] = json.loads(result.stdout)["rollout"]["shadow"]
            written = shadow["pairs"] == len(frame) and shadow["labelled"]["rows"] == len(frame)
            return shadow if written else None

        shadow = wait_until(reported, poll=0.5, what="the shadow copies and labels to be written")
    agreement = shadow["agreement"]
    assert agreement["ci_low"] <= agreement["rate"] <= agreement["ci_high"]
    assert agreement["ci_high"] < 0.5  # inverted labels: the two mostly disagree
    assert shadow["difference"]["p50"] != 0.0
    quality = shadow["labelled"]
    assert quality["rows"] == len(frame)
    assert quality["champion"]["accuracy"] > quality["challenger"]["accuracy"]
    table = cli_runner(home)("status", "churn")
    assert "shadow: 120 paired rows; labels agree" in table.stdout
    report = cli_runner(home)("report", "churn", "--out", str(home / "report.html"))
    assert report.code == 0, report.stderr
    assert "challenger minus champion" in (home / "report.html").read_text()


def test_a_rollout_whose_champion_a_server_does_not_serve_yet_gets_none_of_its_traffic(
    home: Path,
) -> None:
    """A rollout started just after a promotion names the promoted champion before every
    server has swapped to it. Such a server answers everything with the champion it has
    and counts none of it for the rollout: counted, its champion's requests would be of a
    version the rollout does not name, and the split would read as broken (the gate
    paused the demo's broken canary this way on a busy machine)."""
    settings = Settings(home=home)
    with Store(settings.store_uri) as store:
        d = DeploymentLog(store).save(
            Deployment("churn", "canary", 3, 2, {"champion": 50.0, "challenger": 50.0},
                       steps=(50.0, 100.0), interval_seconds=3600.0),
            Event("churn", "deploy", "test", {}, None, None))
    with running_server(home, ["churn"], **ENV) as server, traffic(server.url) as load:
        wait_until(lambda: loaded(server.url, 2), what="the challenger to load")
        before = load.settled(lambda a: a[0] == 200, "answers with the challenger loaded", 60)
        ModelRegistry(settings).set_alias("churn", "champion", 3)
        after = load.settled(lambda a: a[2] != "1", "the server to swap to champion 3", 200)
        with Store(settings.store_uri) as store:
            wait_until(lambda: sum(c.requests for c in TrafficLog(store).totals(
                "churn", 0, time.time() + 60, epoch=d.epoch).values()) >= 100,
                what="100 counted requests of the rollout")
            counted = TrafficLog(store).totals("churn", 0, time.time() + 60, epoch=d.epoch)
    assert {(v, n) for _, v, n in before} == {("champion", "1")}
    assert {(v, n) for _, v, n in after} == {("champion", "3"), ("challenger", "2")}
    assert set(counted) == {("champion", 3), ("challenger", 2)}
