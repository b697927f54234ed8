"""The free-space check behind ``/readyz?verbose``'s ``disk_space``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.disk_space import LowDiskSpaceError, check_free_space, local_write_paths
from core.settings import Settings, StorageBackend


def test_enough_space_passes(tmp_path: Path) -> None:
    check_free_space([tmp_path], 1)


def test_too_little_space_names_the_path(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(LowDiskSpaceError, match=str(tmp_path)):
        check_free_space([tmp_path], free * 2)


def test_a_missing_directory_is_checked_at_its_parent(tmp_path: Path) -> None:
    check_free_space([tmp_path / "not" / "yet"], 1)
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(LowDiskSpaceError):
        check_free_space([tmp_path / "not" / "yet"], free * 2)


def test_local_paths_follow_the_backends(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    assert local_write_paths(embedded) == [tmp_path.resolve(), tmp_path.resolve() / "blobs"]
    remote = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://moorage@127.0.0.1/moorage",
        storage=StorageBackend.S3,
    )
    assert local_write_paths(remote) == []
    elsewhere = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/db/m.db")
    assert local_write_paths(elsewhere)[0] == (tmp_path / "db").resolve()
