"""The migration scripts form one line: exactly one head, every revision reachable from it."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from storage.db import migrate


def _scripts() -> ScriptDirectory:
    return migrate.script_directory()


def test_there_is_exactly_one_head() -> None:
    scripts = _scripts()
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    assert migrate.heads() == tuple(scripts.get_heads())


def test_every_revision_is_an_ancestor_of_the_head() -> None:
    scripts = _scripts()
    (head,) = scripts.get_heads()
    ancestors = {script.revision for script in scripts.iterate_revisions(head, "base")}
    assert ancestors == {script.revision for script in scripts.walk_revisions()}
