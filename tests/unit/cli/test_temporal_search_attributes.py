"""Moorage's search attributes: registered by the dev server, set per outbox event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cli.dev_settings import dev_overrides
from cli.outbox import search_for
from cli.temporal_dev import DevServerLayout, dev_server_command
from core import events
from core.control_records import OutboxRecord
from core.settings import Settings


def _event(
    kind: str, repository: str | None = None, digest: str | None = None, data: str | None = None
) -> OutboxRecord:
    return OutboxRecord(1, kind, 7, repository, digest, None, data, datetime.now(UTC))


def test_an_artifact_event_carries_project_repository_and_digest() -> None:
    event = _event(events.MANIFEST_PUSHED, "acme/team/app", "sha256:" + "a" * 64)
    assert search_for(event) == {
        "MoorageProject": "acme",
        "MoorageRepository": "acme/team/app",
        "MoorageDigest": "sha256:" + "a" * 64,
    }


def test_what_an_event_lacks_is_left_out() -> None:
    assert search_for(_event(events.PROJECT_DELETED, data="acme")) == {"MoorageProject": "acme"}
    retention = json.dumps({"run_id": "r1", "project": "acme"})
    assert search_for(_event(events.RETENTION_REQUESTED, data=retention)) == {
        "MoorageProject": "acme"
    }
    assert search_for(_event(events.GC_REQUESTED, data=json.dumps({"run_id": "g1"}))) == {}


def test_the_dev_server_registers_every_attribute_as_keyword(tmp_path: Path) -> None:
    settings = Settings(**dev_overrides(tmp_path, 17233, 18233))
    command = dev_server_command(Path("/bin/temporal"), settings, DevServerLayout(tmp_path))
    joined = " ".join(command)
    for name in ("MoorageProject", "MoorageRepository", "MoorageDigest"):
        assert f"--search-attribute {name}=Keyword" in joined
