"""One trace from an HTTP request through the outbox into the workflow and its activities.

The API and the worker run as processes with tracing on, exporting over OTLP/HTTP to a
small receiver in the test that decodes what the SDK's exporter sends.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from tests.services.moorage import REPO_ROOT, start_moorage
from tests.services.otlp import OtlpReceiver
from tests.services.process import spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

#: Bound on the whole chain reaching the receiver (exports every 0.2 s here).
BOUND = 90.0


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    component: str


class Receiver:
    """An OTLP/HTTP traces endpoint keeping the spans that arrive."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        self.endpoint = OtlpReceiver(self.add)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def add(self, headers: Mapping[str, str], request: ExportTraceServiceRequest) -> None:
        del headers
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    self.spans += [
                        ReceivedSpan(
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes.get("moorage.component", ""),
                        )
                        for span in scope.spans
                    ]

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.endpoint.close()


def _complete(spans: list[ReceivedSpan]) -> bool:
    names = [span.name for span in spans]
    return all(
        any(name.startswith(prefix) for name in names)
        for prefix in ("POST /api/v1/system/gc", "StartWorkflow:", "RunWorkflow:", "RunActivity:")
    )


def test_one_trace_from_request_to_activities(
    tmp_path: Path, temporal_server: TemporalServer, receiver: Receiver
) -> None:
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.2",
        "MOORAGE_OBSERVABILITY__TRACING__ENABLED": "true",
        "MOORAGE_OBSERVABILITY__TRACING__ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    api = start_moorage(tmp_path / "api", env, ["--workers", "1"])
    worker = None
    try:
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        worker = spawn(
            "moorage worker",
            [sys.executable, "-m", "cli.main", "worker"],
            log_path=tmp_path / "worker.log",
            env=worker_env | api.env,
            cwd=REPO_ROOT,
        )
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        requested = httpx.post(
            f"{api.url}/api/v1/system/gc/",
            json={"dry_run": True},
            auth=(api.admin_username, api.admin_password),
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
            timeout=30,
        )
        assert requested.status_code == 202, requested.text
        ping_trace, ping_parent = secrets.token_hex(16), secrets.token_hex(8)
        pinged = httpx.get(
            f"{api.url}/v2/",
            headers={"traceparent": f"00-{ping_trace}-{ping_parent}-01"},
            timeout=30,
        )
        assert pinged.status_code == 401
        deadline = time.monotonic() + BOUND
        while not _complete(receiver.of_trace(trace_id)) and time.monotonic() < deadline:
            assert worker.popen.poll() is None, worker.log_path.read_text()
            time.sleep(0.2)
        spans = receiver.of_trace(trace_id)
        assert _complete(spans), [span.name for span in receiver.spans]
    finally:
        if worker is not None:
            worker.stop()
        api.stop()

    (server,) = [s for s in spans if s.name.startswith("POST /api/v1/system/gc")]
    assert server.parent_id == client_span
    assert server.component == "api"
    # Through the outbox: the worker's dispatcher starts the workflow as a child of the
    # request's span, and the workflow's activities belong to the same trace.
    starts = [s for s in spans if s.name == "StartWorkflow:GarbageCollectionWorkflow"]
    assert [s.parent_id for s in starts] == [server.span_id]
    assert starts[0].component == "worker"
    activities = {s.name for s in spans if s.name.startswith("RunActivity:")}
    assert activities
    assert {s.component for s in spans} == {"api", "worker"}
    # The request's log lines carry its trace id.
    lines = [json.loads(line) for line in api.log_path.read_text().splitlines() if line]
    access = [d for d in lines if d["logger"] == "moorage.access" and d["method"] == "POST"]
    assert [d["trace_id"] for d in access] == [trace_id]
    assert access[0]["span_id"] == server.span_id
    # /v2 requests continue their client's trace too (through the pipeline's hooks).
    (ping,) = receiver.of_trace(ping_trace)
    assert ping.name == "GET /v2/"
    assert ping.parent_id == ping_parent
