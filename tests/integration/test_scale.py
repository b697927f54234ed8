"""Catalog and tag-list pages stay index range reads at 100k repositories and 1M tags.

Seeds real databases (SQLite and PostgreSQL) with bulk SQL, then reads pages through
``SqlMetadata`` exactly as the API does. The assertions are about what a client sees
(the right page, in order, after ``last``) and about the database's own plan (an index
range read, never a scan of the table), not about time: the measured costs go to the
test log for comparison with the 1k-repository case (``python -m bench.scale`` prints
both scales side by side).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from bench.scale import BIG_REPOSITORY_TAGS, LARGE, PAGE, SMALL, Scale, measure
from core.settings import Settings
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata
from tests.services.postgres import Postgres

if TYPE_CHECKING:
    from pathlib import Path

_log = logging.getLogger(__name__)


def _check(rows: list[dict[str, object]], scale: Scale) -> None:
    assert {row["page"] for row in rows} == {
        "catalog-first",
        "catalog-after-last",
        "tags-first",
        "tags-after-last",
    }
    for row in rows:
        _log.warning("scale %s: %s", scale.name, row)
        if scale is not LARGE:
            continue  # NOTE: on a small table a planner may rightly prefer a scan
        plan = str(row["plan"]).lower()
        assert "index" in plan, row
        assert "scan repository" not in plan, row
        assert "scan tag" not in plan, row
        assert "seq scan" not in plan, row


@pytest.mark.parametrize("scale", [SMALL, LARGE], ids=lambda scale: scale.name)
def test_pages_on_sqlite_use_the_indexes(tmp_path: Path, scale: Scale) -> None:
    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    rows = measure(url, tmp_path, scale, rounds=20)
    _check(rows, scale)


@pytest.mark.parametrize("scale", [SMALL, LARGE], ids=lambda scale: scale.name)
def test_pages_on_postgres_use_the_indexes(
    tmp_path: Path, postgres: Postgres, scale: Scale
) -> None:
    url = postgres.create_database(f"scale_{scale.repositories}")
    rows = measure(url, tmp_path, scale, rounds=20)
    _check(rows, scale)


def test_pages_are_correct_at_scale(tmp_path: Path) -> None:
    """The pages a client walks: ordered, ``n`` long, strictly after ``last``."""
    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    measure(url, tmp_path, LARGE, rounds=1)
    engines = create_engines(Settings(database_url=url, data_dir=tmp_path))
    metadata = SqlMetadata(engines)
    try:
        with metadata.read() as session:
            first = session.repositories.catalog(None, PAGE, public_only=False)
            after = session.repositories.catalog("scale/r0050000", PAGE, public_only=False)
            big = session.repositories.get("scale/r0000001")
            assert big is not None
            tags = session.tags.page(big.id, "v005000", PAGE)
            last_tags = session.tags.page(big.id, f"v{BIG_REPOSITORY_TAGS - 1:06d}", PAGE)
    finally:
        engines.dispose()
    assert first == [f"scale/r{n:07d}" for n in range(1, PAGE + 1)]
    assert after == [f"scale/r{n:07d}" for n in range(50_001, 50_001 + PAGE)]
    assert tags == [f"v{n:06d}" for n in range(5_001, 5_001 + PAGE)]
    assert last_tags == [f"v{BIG_REPOSITORY_TAGS:06d}"]
