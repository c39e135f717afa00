"""The store's schema moves by alembic migrations: every store reaches the newest revision,
stores from before migrations keep their rows, and a newer store is refused clearly."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from mlcanary.errors import InvalidInput
from mlcanary.store.database import Store
from mlcanary.store.schema import HEAD, MIGRATIONS, metadata, revision
from tests.monitor.databases import DATABASES, store_url
from tests.store.test_database import record


def test_head_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_build_exactly_the_declared_tables(kind: str, tmp_path: Path) -> None:
    with store_url(kind, tmp_path) as url, Store(url) as store:
        assert revision(store.engine) == HEAD
        with store.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
        assert differences == []


@pytest.mark.parametrize("kind", DATABASES)
def test_a_store_from_before_migrations_is_stamped_and_keeps_its_rows(
    kind: str, tmp_path: Path
) -> None:
    with store_url(kind, tmp_path) as url:
        with Store(url) as made:  # the tables as the first schema made them, no version
            made.write_predictions([record("kept")])
            with made.engine.begin() as conn:
                conn.execute(text("DROP TABLE alembic_version"))
            assert revision(made.engine) is None
        with Store(url) as opened:
            assert revision(opened.engine) == HEAD
            assert opened.count("churn") == 1


@pytest.mark.parametrize("kind", DATABASES)
def test_a_store_a_newer_mlcanary_migrated_is_refused_by_name(kind: str, tmp_path: Path) -> None:
    with store_url(kind, tmp_path) as url:
        with Store(url) as made, made.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        refused = Store(url)
        with pytest.raises(InvalidInput, match="revision '9999' is not one this mlcanary knows"):
            refused.open()
        refused.close()


def _open(url: str) -> str | None:
    with Store(url) as store:
        return revision(store.engine)


def test_processes_opening_a_new_store_at_once_all_reach_the_newest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_open, [url] * 4) == [HEAD] * 4
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_a_command_on_a_store_a_newer_mlcanary_migrated_exits_2_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store(f"sqlite:///{home / 'store.db'}") as made, made.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    env = {**os.environ, "MLCANARY_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "mlcanary", "events", "churn"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: store schema revision '9999' is not one this mlcanary knows (its newest "
        f"is '{HEAD}'): the store was migrated by a newer mlcanary; upgrade mlcanary"]
