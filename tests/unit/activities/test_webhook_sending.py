"""A target's sending signs each delivery with the secrets current when it is sent.

A secret rotation and a redelivery (the API, another process) can commit at any moment
of a sending round. Whatever moment that is, the redelivered event (queued after the
rotation) reaches the receiver signed with both the new and the old secret. Real SQLite
store, real policy service and sealing; only the HTTP client is a recording stand-in, and
the signatures are checked with the ``standardwebhooks`` package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from adapters.master_key import secret_box
from cli.composition import Composition, compose
from cli.startup import prepare_installation
from core.access import Identity
from core.outbound import OutboundPolicy
from core.services.access_control import AccessControl
from core.settings import AuthSettings, Settings
from core.webhook_delivery import Answer
from core.webhook_events import WebhookEvent
from core.webhook_payloads import PayloadFormat
from core.webhooks import Delivery, NewDelivery, WebhookPolicy, WebhookService
from storage.db.engine import Engines
from storage.db.webhooks import SqlWebhookStore

ADMIN = Identity(subject="admin", is_admin=True)
EVENT = 41
#: Runs of the sending activity a test allows (a woken workflow runs it again).
RUNS = 5


@dataclass
class PolicyData:
    name: str = "rotating"
    url: str = "https://hooks.example.test/hook"
    events: list[WebhookEvent] = field(default_factory=lambda: [WebhookEvent.ARTIFACT_PUSHED])
    payload_format: PayloadFormat = PayloadFormat.CLOUDEVENTS
    auth_header: str | None = None
    enabled: bool = True


@dataclass
class Sent:
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingHttp:
    """Answers 204 to every delivery and keeps what it was sent."""

    sent: list[Sent] = field(default_factory=list)

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Answer:
        del url
        self.sent.append(Sent(dict(headers), body))
        return Answer(204, None, b"")


class CommitsMeanwhile(SqlWebhookStore):
    """The SQL store; once armed, right after its ``after``-th read, ``meanwhile`` commits."""

    def __init__(self, engines: Engines, after: int) -> None:
        super().__init__(engines)
        self.after = after
        self.reads = 0
        self.meanwhile: Callable[[], None] | None = None

    def arm(self, meanwhile: Callable[[], None]) -> None:
        self.reads, self.meanwhile = 0, meanwhile

    def _read(self) -> None:
        self.reads += 1
        if self.reads == self.after and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()

    def policy(self, policy_id: int) -> WebhookPolicy | None:
        found = super().policy(policy_id)
        self._read()
        return found

    def pending(self, policy_id: int, limit: int) -> list[Delivery]:
        found = super().pending(policy_id, limit)
        self._read()
        return found


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Composition]:
    settings = Settings(
        data_dir=tmp_path, auth=AuthSettings(admin_password=SecretStr("admin-password-1"))
    )
    prepare_installation(settings)
    composed = compose(settings)
    try:
        yield composed
    finally:
        composed.close()


def _verified_with(secrets: list[str], sent: Sent) -> list[int]:
    good = []
    for index, secret in enumerate(secrets):
        try:
            Webhook(secret).verify(sent.body, sent.headers)
        except WebhookVerificationError:
            continue
        good.append(index)
    return good


@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
async def test_a_redelivery_after_a_rotation_is_signed_with_both_secrets(
    root: Composition, after: int
) -> None:
    settings = root.settings
    store = CommitsMeanwhile(root.engines, after)
    box = secret_box(settings)
    service = WebhookService(
        store,
        AccessControl(root.identity_store, root.projects, settings.oidc.group_prefix),
        box,
        OutboundPolicy.of(),
        settings.webhooks,
        lambda _policy_id: None,
    )
    created = service.create(ADMIN, None, PolicyData())
    hook = created.policy.id
    now = datetime.now(UTC)
    event = {"event_id": EVENT, "repository": "p/app", "digest": "sha256:" + "a" * 64}
    store.add_deliveries([NewDelivery(hook, EVENT, "artifact.pushed", "p/app", event, now)], now)
    rotated: list[str] = []

    def rotate_and_redeliver() -> None:  # what the API commits while the round runs
        rotated.append(service.rotate_secret(ADMIN, None, hook))
        assert service.redeliver(ADMIN, None, hook, event_id=EVENT, since=None, until=None) == 1

    store.arm(rotate_and_redeliver)
    http = RecordingHttp()
    activities = WebhookActivities(settings, store, lambda: box, lambda: http)
    for _ in range(RUNS):
        await ActivityEnvironment().run(activities.send_webhook_deliveries, hook)
        if rotated and store.pending_count(hook) == 0:
            break

    assert rotated, "the rotation was committed during the runs"
    assert store.pending_count(hook) == 0
    assert len(http.sent) == 2  # the event, then its redelivery (same webhook-id)
    first, again = http.sent
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == f"evt_{EVENT}"
    secrets = [rotated[0], created.secret]
    assert 1 in _verified_with(secrets, first)  # queued before the rotation: the old one
    assert _verified_with(secrets, again) == [0, 1]  # queued after it: the new and the old
    assert len(again.headers["webhook-signature"].split(" ")) == 2
