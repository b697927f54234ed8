"""``moorage apply|export`` with ``ReplicationPolicy`` documents against a running Moorage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.test_apply_cli import Registry, _doc, _registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "apply-replication")


def _policies(registry: Registry) -> dict[str, dict[str, Any]]:
    response = registry.get("/api/v1/replication/policies?limit=1000")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["items"]}


def test_replication_policies_as_code(registry: Registry) -> None:
    endpoint, name = f"peer-{uuid.uuid4().hex[:8]}", f"pol-{uuid.uuid4().hex[:8]}"
    spec = {
        "direction": "push",
        "endpoint": endpoint,
        "repositories": "team/**",
        "tags": "v*",
        "flatten": 1,
        "prefix": "mirror",
        "trigger": "event",
        "deletions": True,
        "concurrency": 2,
    }
    docs = [
        _doc("RegistryEndpoint", {"name": endpoint}, {"url": "https://peer.example.test"}),
        _doc("ReplicationPolicy", {"name": name}, spec),
    ]
    applied = registry.run("apply", "-f", str(registry.write(docs)), "-o", "json")
    assert applied.code == 0, applied.out + applied.err
    created = _policies(registry)[name]
    assert (created["prefix"], created["trigger"], created["deletions"]) == (
        "mirror",
        "event",
        True,
    )

    again = registry.run("apply", "-f", str(registry.write(docs)), "-o", "json")
    assert again.code == 0, again.err
    assert again.json()["changes"] == [], "an applied file plans no change"

    changed = [docs[0], _doc("ReplicationPolicy", {"name": name}, {**spec, "tags": "**"})]
    updated = registry.run("apply", "-f", str(registry.write(changed)), "-o", "json")
    assert updated.code == 0, updated.err
    assert _policies(registry)[name]["tags"] == "**"
    assert _policies(registry)[name]["id"] == created["id"]

    exported = [
        d
        for d in yaml.safe_load_all(registry.run("export").out)
        if d["kind"] == "ReplicationPolicy"
    ]
    assert [d["metadata"]["name"] for d in exported] == [name]
    assert exported[0]["spec"]["endpoint"] == endpoint

    refused = registry.run(
        "apply",
        "-f",
        str(
            registry.write(
                [_doc("ReplicationPolicy", {"name": "orphan"}, {**spec, "endpoint": "none"})]
            )
        ),
    )
    assert refused.code != 0
    assert "no registry endpoint 'none'" in refused.out + refused.err

    pruned = registry.run("apply", "-f", str(registry.write([docs[0]])), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    assert name not in _policies(registry)
