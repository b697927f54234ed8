"""Catalog and tag-list page cost at two scales: ``python -m bench.scale``.

Seeds a fresh, migrated database with bulk SQL (one ``INSERT ... SELECT`` per table
from a generated series), then times pages through ``SqlMetadata`` exactly as the API
reads them: the first ``_catalog`` page, a ``_catalog`` page after ``last`` in the middle
of the names, the first page of the biggest repository's tags and a tag page after
``last``. Prints one JSON object per (backend, scale, page) with the median cost and the
database's query plan, so the two scales can be compared side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from core.settings import Settings
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata
from storage.db.migrate import upgrade

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PAGE = 100
#: Tags per repository in the biggest repository (the one whose tags are paged).
BIG_REPOSITORY_TAGS = 10_000


@dataclass(frozen=True)
class Scale:
    """How many repositories and tags to seed (tags spread evenly over repositories)."""

    name: str
    repositories: int
    tags: int


SMALL = Scale("1k-repos-10k-tags", 1_000, 10_000)
LARGE = Scale("100k-repos-1M-tags", 100_000, 1_000_000)


def _series(dialect: str, count: int) -> str:
    """A ``SELECT`` of ``n`` from 1 to ``count`` on either database."""
    if dialect == "postgresql":
        return f"SELECT generate_series(1, {count}) AS n"
    recursive = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < "
    return f"{recursive}{int(count)}) SELECT n FROM s"  # noqa: S608 - an integer


def _pad(dialect: str, expression: str, width: int) -> str:
    """``expression`` as zero-padded text, so names sort like their numbers."""
    if dialect == "postgresql":
        return f"lpad(({expression})::text, {width}, '0')"
    return f"printf('%0{width}d', {expression})"


def seed(connection: Connection, scale: Scale) -> tuple[str, str]:
    """Insert ``scale``'s rows in bulk; return the big repository's name and a middle name.

    Every repository holds one manifest; tags point at it. The first repository holds
    :data:`BIG_REPOSITORY_TAGS` tags, the rest share the remaining tags evenly.
    """
    dialect = connection.dialect.name
    now = "CURRENT_TIMESTAMP"
    connection.execute(
        text(
            "INSERT INTO project (name, public, storage_id, created_at) "
            "VALUES ('scale', true, 'scale-tenant', CURRENT_TIMESTAMP)"
        )
    )
    project_id = connection.execute(text("SELECT id FROM project WHERE name = 'scale'")).scalar()
    repo_name = "'scale/r' || " + _pad(dialect, "n", 7)
    connection.execute(
        text(
            "INSERT INTO repository (project_id, name, created_at) "  # noqa: S608 - no input
            f"SELECT {project_id}, {repo_name}, {now} "
            f"FROM ({_series(dialect, scale.repositories)}) s"
        )
    )
    digest = "'sha256:' || " + _pad(dialect, "r.id", 64)
    connection.execute(
        text(
            "INSERT INTO manifest (repository_id, digest, media_type, size, payload, created_at) "  # noqa: S608 - no input
            f"SELECT r.id, {digest}, 'application/vnd.oci.image.manifest.v1+json', 2, "
            f"{_empty_payload(dialect)}, {now} FROM repository r WHERE r.project_id = {project_id}"
        )
    )
    big = f"scale/r{1:07d}"
    rest = max(scale.tags - BIG_REPOSITORY_TAGS, 0)
    per_repo = max(rest // max(scale.repositories - 1, 1), 1)
    _seed_tags(connection, dialect, f"r.name = '{big}'", BIG_REPOSITORY_TAGS, now)
    _seed_tags(connection, dialect, f"r.name <> '{big}'", per_repo, now)
    connection.execute(text("ANALYZE"))
    middle = f"scale/r{scale.repositories // 2:07d}"
    return big, middle


def _empty_payload(dialect: str) -> str:
    return "convert_to('{}', 'UTF8')" if dialect == "postgresql" else "CAST('{}' AS BLOB)"


def _seed_tags(connection: Connection, dialect: str, where: str, count: int, now: str) -> None:
    tag_name = "'v' || " + _pad(dialect, "s.n", 6)
    connection.execute(
        text(
            "INSERT INTO tag (repository_id, name, manifest_id, updated_at) "  # noqa: S608 - no input
            f"SELECT r.id, {tag_name}, m.id, {now} "
            f"FROM repository r JOIN manifest m ON m.repository_id = r.id "
            f"CROSS JOIN ({_series(dialect, count)}) s WHERE {where}"
        )
    )


def _median_us(call: Callable[[], object], rounds: int) -> float:
    call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def _plan(connection: Connection, sql: str, params: dict[str, Any]) -> str:
    prefix = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
    rows = connection.execute(text(prefix + sql), params).all()
    return " | ".join(str(row[-1]) for row in rows)


def page_costs(metadata: SqlMetadata, big: str, middle: str, rounds: int) -> dict[str, float]:
    """Median microseconds per page for each kind of page (one read transaction each)."""
    with metadata.read() as session:
        repository = session.repositories.get(big)
    if repository is None:
        raise RuntimeError(f"seeded repository {big} is missing")
    repository_id = repository.id

    def catalog(last: str | None) -> Callable[[], object]:
        def run() -> object:
            with metadata.read() as session:
                return session.repositories.catalog(last, PAGE, public_only=False)

        return run

    def tags(last: str | None) -> Callable[[], object]:
        def run() -> object:
            with metadata.read() as session:
                return session.tags.page(repository_id, last, PAGE)

        return run

    middle_tag = f"v{BIG_REPOSITORY_TAGS // 2:06d}"
    return {
        "catalog-first": _median_us(catalog(None), rounds),
        "catalog-after-last": _median_us(catalog(middle), rounds),
        "tags-first": _median_us(tags(None), rounds),
        "tags-after-last": _median_us(tags(middle_tag), rounds),
    }


def plans(connection: Connection, big_id: int, middle: str) -> dict[str, str]:
    """The database's plan for the catalog and tag page queries."""
    catalog = "SELECT name FROM repository WHERE name > :last ORDER BY name LIMIT 100"
    tags = (
        "SELECT name FROM tag WHERE repository_id = :rid AND name > :last ORDER BY name LIMIT 100"
    )
    return {
        "catalog": _plan(connection, catalog, {"last": middle}),
        "tags": _plan(connection, tags, {"rid": big_id, "last": "v005000"}),
    }


def measure(url: str, data_dir: Path, scale: Scale, rounds: int) -> list[dict[str, Any]]:
    """Migrate ``url``, seed it at ``scale`` and measure every page kind."""
    settings = Settings(database_url=url, data_dir=data_dir)
    upgrade(settings)
    engines = create_engines(settings)
    try:
        started = time.perf_counter()
        with engines.write.begin() as connection:
            big, middle = seed(connection, scale)
        seeded_s = time.perf_counter() - started
        metadata = SqlMetadata(engines)
        costs = page_costs(metadata, big, middle, rounds)
        with engines.read.connect() as connection:
            big_id = connection.execute(
                text("SELECT id FROM repository WHERE name = :n"), {"n": big}
            ).scalar_one()
            plan = plans(connection, big_id, middle)
        backend = engines.read.dialect.name
    finally:
        engines.dispose()
    return [
        {
            "backend": backend,
            "scale": scale.name,
            "page": page,
            "median_us": round(cost, 1),
            "seed_s": round(seeded_s, 1),
            "plan": plan["catalog" if page.startswith("catalog") else "tags"],
        }
        for page, cost in costs.items()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure page costs on SQLite (and PostgreSQL with ``--postgres-url``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (psycopg URL)")
    parser.add_argument("--postgres-url-large", help="a second empty database for 100k/1M")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moorage-scale-") as scratch:
        for scale in (SMALL, LARGE):
            data_dir = Path(scratch) / scale.name
            url = f"sqlite:///{data_dir / 'moorage.db'}"
            for row in measure(url, data_dir, scale, args.rounds):
                print(json.dumps(row), flush=True)
        pg_urls = {SMALL.name: args.postgres_url, LARGE.name: args.postgres_url_large}
        for scale in (SMALL, LARGE):
            pg_url = pg_urls[scale.name]
            if pg_url:
                for row in measure(pg_url, Path(scratch) / "pg", scale, args.rounds):
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
