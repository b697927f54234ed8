"""Group commit on SQLite: shared transactions, one savepoint per caller."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.settings import AuthSettings, Settings
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata, SqlUnitOfWork
from storage.db.migrate import upgrade

CALLERS = 48


class RefusedError(Exception):
    pass


def test_each_caller_gets_its_own_outcome_and_only_successes_are_stored(
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, auth=AuthSettings(admin_password=SecretStr("admin-password-1"))
    )
    upgrade(settings)
    engines = create_engines(settings)
    metadata = SqlMetadata(engines)
    start = threading.Barrier(CALLERS)
    threads: set[int] = set()

    def push(index: int) -> str:
        name = f"p{index}-{uuid.uuid4().hex[:8]}"

        def work(session: SqlUnitOfWork) -> str:
            threads.add(threading.get_ident())
            time.sleep(0.005)  # while one batch runs, the other callers queue up
            assert session.projects.add(name, public=False, storage_id=name) is not None
            if index % 3 == 0:
                raise RefusedError(name)  # after writing: the savepoint must undo the insert
            return name

        start.wait(timeout=30)
        return metadata.write_grouped(work)

    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            futures = [pool.submit(push, index) for index in range(CALLERS)]
        stored: list[str] = []
        refused: list[str] = []
        for index, future in enumerate(futures):
            if index % 3 == 0:
                with pytest.raises(RefusedError) as caught:
                    future.result()
                refused.append(str(caught.value))
            else:
                stored.append(future.result())
        with metadata.read() as session:
            assert all(session.projects.get(name) is not None for name in stored)
            assert all(session.projects.get(name) is None for name in refused)
        # Work ran on fewer threads than there were callers: callers' work was combined.
        assert len(threads) < CALLERS
    finally:
        engines.dispose()
