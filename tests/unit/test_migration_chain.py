"""The Alembic history stays one straight line: branches merged in parallel must re-chain
their migrations onto the current head instead of forking the schema."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from paymux.store.migrate import alembic_config


def test_migrations_have_exactly_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"several Alembic heads {heads}: set down_revision to main's head"


def test_every_revision_descends_from_the_initial_schema() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())
    assert revisions[-1].revision == "0001"
    assert all(r.down_revision is not None for r in revisions[:-1])
