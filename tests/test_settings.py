"""Settings precedence: explicit values > environment > mlcanary.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcanary.config import Settings


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
    from pydantic import ValidationError

    monkeypatch.setenv("MLCANARY_REFERENCE_ROWS", "ten")
    with pytest.raises(ValidationError, match="reference_rows"):
        Settings()
