"""The in-process gateway of the store tests (real database and Redis), reused here so the
hostile-input tests also run on PostgreSQL in CI's second pass (they carry the `store`
marker)."""

from tests.store.conftest import (  # noqa: F401 - fixtures, by name
    api,
    clock,
    gw,
    store_database_url,
    store_dir,
    store_settings,
)
