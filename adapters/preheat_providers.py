"""Preheat providers over the SSRF-safe outbound client (``core.preheat.ProviderClient``).

- **Dragonfly**: the manager's Open API. ``POST /oapi/v1/jobs`` creates a ``preheat`` job
  of type ``image`` whose ``url`` is the manifest and whose ``headers`` carry the
  registry token; ``GET /oapi/v1/jobs/<id>`` answers its ``state`` (``PENDING``,
  ``RUNNING``, ``SUCCESS``, ``FAILURE``) and, once done, per scheduler cluster the
  ``success_tasks`` and ``failure_tasks`` (peer hostname, IP, URL, description).
  Health: ``GET /healthy``.
- **Kraken**: a distribution notification envelope (the webhook payload format
  ``distribution``, rendered by ``core.webhook_payloads``) ``POST``-ed to
  ``/registry/notifications``; Kraken seeds from its registry backend, so accepting the
  notification is the whole job. Kraken seeds image manifests only, so for an index the
  envelope also names each manifest the index names. Health: ``GET /health``.

Every call goes through :class:`adapters.outbound_http.OutboundClient`: the endpoint is
checked and the connection pinned to the checked address at each call, redirects are not
followed. An ``insecure`` instance's calls go through a client that does not verify TLS
certificates (the outbound checks stay). A refused endpoint or a ``4xx`` answer is final;
an unreachable provider or a ``5xx`` may be retried.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.outbound_http import OutboundClient
from core.outbound import OutboundRefusedError
from core.preheat import (
    AuthMode,
    Instance,
    JobRef,
    JobSpec,
    JobState,
    JobStatus,
    Peer,
    ProviderClient,
    ProviderError,
    ProviderRefusedError,
    Vendor,
)
from core.webhook_events import WebhookEvent
from core.webhook_payloads import WebhookMessage, distribution_envelope

#: Most of a provider's answer read (a Dragonfly job with many peers' results).
PROVIDER_ANSWER_BYTES = 4 * 1024 * 1024
_SERVER_ERROR = 500
_OK_MIN, _OK_MAX = 200, 300
_DONE = {"SUCCESS": JobState.SUCCEEDED, "FAILURE": JobState.FAILED}


def auth_headers(mode: AuthMode, username: str, secret: str | None) -> dict[str, str]:
    """The headers that authenticate Moorage to a provider (``secret`` opened)."""
    if mode is AuthMode.NONE or not secret:
        return {}
    if mode is AuthMode.BASIC:
        pair = base64.b64encode(f"{username}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    if mode is AuthMode.BEARER:
        return {"Authorization": f"Bearer {secret}"}
    name, sep, value = secret.partition(":")
    if sep and name.strip() and " " not in name.strip():
        return {name.strip(): value.strip()}
    return {"Authorization": secret.strip()}


class _Http:
    def __init__(self, client: OutboundClient, endpoint: str, headers: Mapping[str, str]) -> None:
        self._client = client
        self._base = endpoint.rstrip("/")
        self._headers = dict(headers)

    async def call(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, bytes]:
        merged = {**self._headers, **headers}
        try:
            answer = await self._client.request(
                method, self._base + path, headers=merged, content=body
            )
        except OutboundRefusedError as exc:
            raise ProviderRefusedError(f"refused: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"{type(exc).__name__}: {exc}") from exc
        return answer.status, answer.body


def _check(status: int, body: bytes, what: str) -> None:
    if _OK_MIN <= status < _OK_MAX:
        return
    text = body[:512].decode("utf-8", "replace")
    if status >= _SERVER_ERROR or status in (408, 429):
        raise ProviderError(f"{what}: HTTP {status} {text}")
    raise ProviderRefusedError(f"{what}: HTTP {status} {text}")


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ProviderRefusedError(f"{what}: the answer is not JSON") from exc
    if not isinstance(value, dict):
        raise ProviderRefusedError(f"{what}: the answer is not a JSON object")
    return value


def dragonfly_peers(result: Any, cluster_id: int | None = None) -> list[Peer]:
    """Every peer named under ``success_tasks`` / ``failure_tasks`` in a job's result."""
    found: list[Peer] = []
    if isinstance(result, list):
        for item in result:
            found.extend(dragonfly_peers(item, cluster_id))
        return found
    if not isinstance(result, dict):
        return found
    cluster = result.get("scheduler_cluster_id", cluster_id)
    cluster = cluster if isinstance(cluster, int) else cluster_id
    for key, ok in (("success_tasks", True), ("failure_tasks", False)):
        found.extend(
            Peer(
                ok=ok,
                hostname=str(entry.get("hostname", "")),
                ip=str(entry.get("ip", "")),
                url=str(entry.get("url", "")),
                description=str(entry.get("description", "")),
                cluster_id=cluster,
            )
            for entry in result.get(key) or []
            if isinstance(entry, dict)
        )
    for key, value in result.items():
        if key not in ("success_tasks", "failure_tasks") and isinstance(value, (dict, list)):
            found.extend(dragonfly_peers(value, cluster))
    return found


def dragonfly_status(job: dict[str, Any]) -> JobStatus:
    """A Dragonfly job's state and peers, from ``GET /oapi/v1/jobs/<id>``."""
    state = str(job.get("state") or job.get("status") or "").upper()
    peers = dragonfly_peers(job.get("result"))
    if state not in _DONE:
        return JobStatus(JobState.RUNNING, peers)
    message = None
    if _DONE[state] is JobState.FAILED:
        failures = [p.description for p in peers if not p.ok and p.description]
        message = "; ".join(failures[:5]) or "the provider reported FAILURE"
    return JobStatus(_DONE[state], peers, message)


class DragonflyClient:
    """The Dragonfly manager's Open API."""

    def __init__(self, http: _Http) -> None:
        self._http = http

    async def health(self) -> tuple[bool, str]:
        status, body = await self._http.call("GET", "/healthy")
        return _OK_MIN <= status < _OK_MAX, f"HTTP {status} {body[:200].decode('utf-8', 'replace')}"

    async def create(self, spec: JobSpec) -> JobRef:
        args: dict[str, Any] = {
            "type": "image",
            "url": spec.manifest_url,
            "headers": {"Authorization": f"Bearer {spec.token}"},
            "scope": str(spec.scope),
        }
        body = {
            "type": "preheat",
            "args": args,
            "scheduler_cluster_ids": list(spec.cluster_ids),
        }
        status, answer = await self._http.call(
            "POST",
            "/oapi/v1/jobs",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        _check(status, answer, "create job")
        job_id = _json(answer, "create job").get("id")
        if job_id is None or str(job_id) == "":
            raise ProviderRefusedError("create job: the answer names no job id")
        return JobRef(str(job_id))

    async def status(self, job_id: str) -> JobStatus:
        status, answer = await self._http.call("GET", f"/oapi/v1/jobs/{job_id}")
        _check(status, answer, "job status")
        return dragonfly_status(_json(answer, "job status"))


class KrakenClient:
    """Kraken's notification receiver: a distribution envelope per image."""

    def __init__(self, http: _Http) -> None:
        self._http = http

    async def health(self) -> tuple[bool, str]:
        status, body = await self._http.call("GET", "/health")
        return _OK_MIN <= status < _OK_MAX, f"HTTP {status} {body[:200].decode('utf-8', 'replace')}"

    async def create(self, spec: JobSpec) -> JobRef:
        """One envelope: the image's push, and for an index each platform image's too.

        Kraken's proxy seeds image manifests only and skips an index's event, so the
        manifests an index names are announced beside it (by digest, without the tag).
        """
        message = WebhookMessage(
            message_id=spec.event_id,
            type=str(WebhookEvent.ARTIFACT_PUSHED),
            time=datetime.now(UTC),
            source=spec.source,
            registry=spec.registry,
            project=spec.repository.partition("/")[0],
            repository=spec.repository,
            digest=spec.digest,
            tag=spec.tag,
            media_type=spec.media_type or None,
        )
        children = [
            replace(
                message,
                message_id=f"{spec.event_id}-{n}",
                digest=child.digest,
                tag=None,
                media_type=child.media_type or None,
            )
            for n, child in enumerate(spec.children, start=1)
        ]
        headers, body = distribution_envelope([message, *children])
        status, answer = await self._http.call("POST", "/registry/notifications", body, headers)
        _check(status, answer, "notification")
        return JobRef(spec.event_id, done=True)

    async def status(self, job_id: str) -> JobStatus:
        del job_id
        return JobStatus(JobState.SUCCEEDED)


def provider_client(
    client: OutboundClient,
    instance: Instance,
    secret: str | None,
    insecure_client: OutboundClient | None = None,
) -> ProviderClient:
    """The vendor's client of ``instance`` over ``client`` (``secret`` opened).

    An ``insecure`` instance is called through ``insecure_client`` (TLS not verified);
    without one it is refused: its calls would fail on the certificate it was marked for.
    """
    chosen = client
    if instance.insecure:
        if insecure_client is None:
            raise ProviderRefusedError(f"p2p instance {instance.name!r}: no insecure client")
        chosen = insecure_client
    http = _Http(
        chosen, instance.endpoint, auth_headers(instance.auth_mode, instance.username, secret)
    )
    if instance.vendor is Vendor.DRAGONFLY:
        return DragonflyClient(http)
    return KrakenClient(http)
