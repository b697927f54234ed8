"""``moorage dev``: replication reaches the API it serves unless a URL is configured."""

from __future__ import annotations

from pathlib import Path

from cli.dev import with_local_url
from cli.listen import Listen
from core.settings import Settings


def test_the_listen_address_is_the_local_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert with_local_url(settings, Listen("0.0.0.0", 5000)).replication.local_url == (  # noqa: S104
        "http://127.0.0.1:5000"
    )
    assert with_local_url(settings, Listen("::1", 5001)).replication.local_url == (
        "http://[::1]:5001"
    )


def test_a_configured_url_wins(tmp_path: Path) -> None:
    public = Settings(data_dir=tmp_path, public_url="https://registry.example.test")
    assert with_local_url(public, Listen("127.0.0.1", 5000)).replication.local_url is None
    own = Settings(data_dir=tmp_path, replication={"local_url": "http://10.0.0.5:5000"})  # type: ignore[arg-type]
    assert with_local_url(own, Listen("127.0.0.1", 5000)).replication.local_url == (
        "http://10.0.0.5:5000"
    )
