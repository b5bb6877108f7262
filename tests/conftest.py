"""Shared test infrastructure: a real Redis and a real database for every test that needs one.

- Redis: ``PAYMUX_REDIS_URL`` if set, else a private embedded redis-server.
- Database: ``PAYMUX_TEST_DATABASE_URL`` if set (CI sets it to the machine's PostgreSQL for a
  second run), else a fresh SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from paymux.redis_embedded import EmbeddedRedis
from tests.support import drop_created_databases

# Hypothesis's per-example deadline is a timed assertion: on a loaded 2-core machine it
# fails correct code. Properties are checked without it.
settings.register_profile("paymux", deadline=None)
settings.load_profile("paymux")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("PAYMUX_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistence=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Directory decides the marker, so CI's PostgreSQL pass (-m "store or e2e") finds them.
    for item in items:
        path = str(item.path)
        if "/tests/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        if "/tests/store/" in path:
            item.add_marker(pytest.mark.store)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    base = os.environ.get("PAYMUX_TEST_DATABASE_URL")
    if base:
        drop_created_databases(base)
