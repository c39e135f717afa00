"""Real databases for store tests: a SQLite file, or a fresh schema in a real Postgres.

Postgres is found at ``MLCANARY_TEST_POSTGRES_URL`` (default: the local server, trust
auth, database ``test``). Each use gets its own schema, named at random and dropped
after, so parallel and repeated runs never see each other's rows. When the server
cannot be reached the test is skipped, except under ``CI=true``, where a missing
database is a failure rather than a silent gap.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "MLCANARY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DATABASES = ("sqlite", "postgres")


def _driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL whose tables live in a new schema of the test Postgres (dropped after)."""
    schema = f"mlcanary_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(_driver_url(POSTGRES_URL), connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        engine.dispose()
        reason = f"Postgres at {POSTGRES_URL} is unreachable ({str(exc.orig).splitlines()[0]})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; under CI=true the Postgres tests must run")
        pytest.skip(f"{reason}; set MLCANARY_TEST_POSTGRES_URL to run the Postgres tests")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextlib.contextmanager
def store_url(kind: str, directory: Path) -> Iterator[str]:
    """A URL for an empty store of ``kind`` (``sqlite`` or ``postgres``)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'store.db'}"
    else:
        with postgres_schema() as url:
            yield url
