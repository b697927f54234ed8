"""Payload formats: CloudEvents read back by the SDK, Harbor, distribution and Slack shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from core.webhook_payloads import (
    DISTRIBUTION_MEDIA_TYPE,
    PayloadFormat,
    WebhookMessage,
    distribution_envelope,
    render,
)

MESSAGE = WebhookMessage(
    message_id="evt_12",
    type="artifact.pushed",
    time=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
    source="/projects/team/webhooks/3",
    registry="registry.example",
    project="team",
    repository="team/app",
    digest="sha256:" + "a" * 64,
    tag="v1 beta%",
    operator="alice",
    media_type="application/vnd.oci.image.manifest.v1+json",
)


def _event(payload_format: PayloadFormat) -> object:
    headers, body = render(payload_format, MESSAGE)
    return from_http_event(HTTPMessage(headers=headers, body=body))


def test_structured_and_binary_cloudevents_read_back_alike() -> None:
    for payload_format in (PayloadFormat.CLOUDEVENTS, PayloadFormat.CLOUDEVENTS_BINARY):
        event = _event(payload_format)
        assert event.get_id() == "evt_12"  # type: ignore[attr-defined]
        assert event.get_type() == "io.moorage.artifact.pushed"  # type: ignore[attr-defined]
        assert event.get_source() == "/projects/team/webhooks/3"  # type: ignore[attr-defined]
        assert event.get_subject() == "registry.example/team/app:v1 beta%"  # type: ignore[attr-defined]
        data = event.get_data()  # type: ignore[attr-defined]
        assert data["repository"] == "team/app"
        assert data["tag"] == "v1 beta%"
        assert data["operator"] == "alice"


def test_structured_mode_is_one_json_document_binary_mode_uses_ce_headers() -> None:
    headers, body = render(PayloadFormat.CLOUDEVENTS, MESSAGE)
    assert headers["content-type"].startswith("application/cloudevents+json")
    assert json.loads(body)["specversion"] == "1.0"
    headers, body = render(PayloadFormat.CLOUDEVENTS_BINARY, MESSAGE)
    assert headers["ce-id"] == "evt_12"
    assert headers["content-type"] == "application/json"
    assert "ce-datacontenttype" not in headers
    assert json.loads(body)["digest"] == MESSAGE.digest


def test_harbor_json_has_harbors_fields() -> None:
    _, body = render(PayloadFormat.HARBOR, MESSAGE)
    payload = json.loads(body)
    assert payload["type"] == "PUSH_ARTIFACT"
    assert payload["occur_at"] == int(MESSAGE.time.timestamp())
    assert payload["operator"] == "alice"
    (resource,) = payload["event_data"]["resources"]
    assert resource["digest"] == MESSAGE.digest
    assert resource["resource_url"] == "registry.example/team/app:v1 beta%"
    assert payload["event_data"]["repository"] == {
        "name": "app",
        "namespace": "team",
        "repo_full_name": "team/app",
    }


def test_distribution_envelope_is_what_kraken_reads() -> None:
    headers, body = render(PayloadFormat.DISTRIBUTION, MESSAGE)
    assert headers["content-type"] == DISTRIBUTION_MEDIA_TYPE
    (event,) = json.loads(body)["events"]
    assert event["action"] == "push"
    assert event["target"]["repository"] == "team/app"
    assert event["target"]["mediaType"] == MESSAGE.media_type
    assert event["target"]["url"].endswith(f"/v2/team/app/manifests/{MESSAGE.digest}")
    assert event["actor"] == {"name": "alice"}


def test_one_distribution_envelope_carries_several_events_in_order() -> None:
    child = replace(MESSAGE, message_id="evt_12-1", digest="sha256:" + "b" * 64, tag=None)
    headers, body = distribution_envelope([MESSAGE, child])
    assert headers["content-type"] == DISTRIBUTION_MEDIA_TYPE
    first, second = json.loads(body)["events"]
    assert (first["id"], first["target"]["tag"]) == ("evt_12", "v1 beta%")
    assert second["id"] == "evt_12-1"
    assert second["target"]["digest"] == child.digest
    assert "tag" not in second["target"]
    # the one-message rendering is the envelope of that one message
    assert render(PayloadFormat.DISTRIBUTION, MESSAGE)[1] == distribution_envelope([MESSAGE])[1]


def test_slack_message_names_the_event_and_the_artifact() -> None:
    _, body = render(PayloadFormat.SLACK, MESSAGE)
    text = json.loads(body)["text"]
    assert "artifact.pushed" in text
    assert "team/app:v1 beta%" in text
