"""Settings precedence: explicit values > environment > mlcanary.toml > defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.errors import InvalidInput


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLCANARY_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Settings().home == Path(".mlcanary")
    (tmp_path / "mlcanary.toml").write_text('home = "from-file"\nreference_rows = 500\n')
    assert Settings().home == Path("from-file") and Settings().reference_rows == 500
    monkeypatch.setenv("MLCANARY_HOME", "from-env")
    assert Settings().home == Path("from-env")
    assert Settings(home=Path("explicit")).home == Path("explicit")


def test_registry_defaults_to_sqlite_under_home_unless_mlflow_uri_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(home=tmp_path / "h")
    assert settings.registry_uri == f"sqlite:///{(tmp_path / 'h' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert Settings().registry_uri == "sqlite:///elsewhere.db"


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCANARY_REFERENCE_ROWS", "ten")
    with pytest.raises(InvalidInput, match=r"MLCANARY_REFERENCE_ROWS \(reference_rows in "
                       r"mlcanary.toml\): expected an integer; got 'ten'"):
        Settings()


def test_a_bad_toml_value_is_named_like_one_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlcanary.toml").write_text("window_rows = 3\n")
    with pytest.raises(InvalidInput, match=r"MLCANARY_WINDOW_ROWS .* expected a number >= 10; "
                       r"got 3"):
        Settings()


@pytest.mark.parametrize("name", ["admin_token", "inference_token", "alert_secret"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_secret_is_refused_not_an_empty_password(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"MLCANARY_{name.upper()}", value)
    with pytest.raises(InvalidInput, match=f"MLCANARY_{name.upper()}.*non-empty secret"):
        Settings()
    assert getattr(Settings(**{name: "s3cret"}), name) == "s3cret"


def mlcanary(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MLCANARY_HOME": str(home), "COLUMNS": "200", **env}
    environment.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "mlcanary", *args], capture_output=True,
                          text=True, timeout=120, env=environment)


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("MLCANARY_MAX_BATCH_SIZE", "abc", "expected an integer; got 'abc'"),
    ("MLCANARY_POLL_SECONDS", "-1", "expected a number >= 0.0; got '-1'"),
    ("MLCANARY_LOG_SAMPLE_RATE", "2", "expected a number <= 1.0; got '2'"),
    ("MLCANARY_ADMIN_TOKEN", "", "expected a non-empty secret"),
    ("MLCANARY_INFERENCE_TOKEN", "", "expected a non-empty secret"),
    ("MLCANARY_RUNTIME", "gpu", "expected 'auto', 'native', 'compiled' or 'onnx'"),
    ("MLCANARY_ACCESS_LOG", "maybe", "expected true or false; got 'maybe'"),
])
def test_serve_with_a_bad_setting_exits_2_naming_it(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = mlcanary(tmp_path / "home", "serve", "m", **{variable: value})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: setting {variable} (") and expected in line, line
    assert "internal error" not in line and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [
    ["train", "data.csv", "--target", "y"], ["models"], ["serve", "m"],
    ["predict", "m", "data.csv"], ["feedback", "m", "labels.csv"], ["watch", "m", "--once"],
    ["status", "m"], ["report", "m"], ["deploy", "m", "--challenger", "2"], ["promote", "m"],
    ["rollback", "m"], ["pause", "m"], ["resume", "m"], ["events", "m"],
    ["retrain", "m"],
    ["backtest", "m", "data.csv"], ["demo"],
])
def test_every_command_refuses_a_bad_setting_with_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "data.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "labels.csv").write_text("id,label\na,1\n")
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in command]
    result = mlcanary(tmp_path / "home", *args, MLCANARY_WINDOW_ROWS="many")
    assert result.returncode == 2, result.stderr
    assert "error: setting MLCANARY_WINDOW_ROWS" in result.stderr, result.stderr


def test_workers_get_the_supervisors_settings_whole(tmp_path: Path) -> None:
    """`serve --workers N` hands its resolved settings (a flag's too) to the workers in one
    variable, instead of rewriting the user's MLCANARY_* variables."""
    from mlcanary.serve.app import worker_settings

    resolved = Settings(home=tmp_path, log_sample_rate=0.0, monitor=False, admin_token="t0k")
    document = json.loads(worker_settings(resolved, ["churn", "bc"]))
    assert document["names"] == ["churn", "bc"]
    assert Settings(**document["settings"]) == resolved
