"""Log lines as a process writes them: one JSON format with request context, errors with stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.oci import OCI_MANIFEST, OCIClient, unique_project
from tests.services.moorage import REPO_ROOT, start_moorage

pytestmark = pytest.mark.integration


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    documents = []
    for line in lines:
        try:
            documents.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return documents


def test_api_writes_json_access_lines_with_request_context(tmp_path: Path) -> None:
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": "127.0.0.1:1",
    }
    server = start_moorage(tmp_path / "api", env, ["--workers", "1"])
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            client = OCIClient(http, server.admin_password)
            repo = f"{unique_project()}/app"
            client.push_image(repo, "v1")
            pulled = client.request(
                "GET",
                f"/v2/{repo}/manifests/v1",
                repo,
                headers={"Accept": OCI_MANIFEST, "X-Request-ID": "pull-1"},
            )
            assert pulled.status_code == 200
            listed = http.get(
                "/api/v1/projects",
                auth=(server.admin_username, server.admin_password),
                headers={"X-Request-ID": "list-1"},
            )
            assert listed.status_code == 200
            unnamed = http.get(
                "/api/v1/projects", auth=(server.admin_username, server.admin_password)
            )
            assert unnamed.status_code == 200
    finally:
        server.stop()
    documents = _json_lines(server.log_path.read_text(encoding="utf-8"))
    assert all({"time", "level", "logger", "message"} <= set(d) for d in documents)
    access = {d["request_id"]: d for d in documents if d["logger"] == "moorage.access"}

    pull = access["pull-1"]
    assert pull["route"] == "/v2/{name}/manifests/{reference}"
    assert pull["method"] == "GET"
    assert pull["status"] == 200
    assert pull["principal"] == "admin"
    assert pull["path"] == f"/v2/{repo}/manifests/v1"
    assert pull["level"] == "INFO"
    assert pull["duration_ms"] >= 0

    listing = access["list-1"]
    assert listing["route"] == "/api/v1/projects"
    assert listing["principal"] == "admin"
    assert listing["status"] == 200
    # Without a client id, the id sent back is the one logged.
    assert access[unnamed.headers["x-request-id"]]["route"] == "/api/v1/projects"


_ERROR_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from cli.logs import configure_logging
    from core.observability_settings import LogSettings

    configure_logging(LogSettings(format=sys.argv[1]))
    def fails():
        raise ValueError("the disk is on fire")
    try:
        fails()
    except ValueError:
        logging.getLogger("moorage.test").exception("writing the blob failed")
    """
)


def _run_error_script(log_format: str, directory: Path) -> str:
    return _run_script(_ERROR_SCRIPT, log_format, directory)


def _run_script(text: str, argument: str, directory: Path) -> str:
    """What ``text`` run as a script of this repository with ``argument`` wrote to stderr."""
    script = directory / "script.py"
    script.write_text(text)
    done = subprocess.run(
        [sys.executable, str(script), argument],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr


def test_errors_carry_message_and_stack_in_json(tmp_path: Path) -> None:
    (document,) = _json_lines(_run_error_script("json", tmp_path))
    assert document["level"] == "ERROR"
    assert document["message"] == "writing the blob failed"
    assert document["error"]["type"] == "ValueError"
    assert document["error"]["message"] == "the disk is on fire"
    assert "Traceback" in document["error"]["stack"]
    assert 'raise ValueError("the disk is on fire")' in document["error"]["stack"]


def test_console_format_is_readable_and_keeps_the_stack(tmp_path: Path) -> None:
    output = _run_error_script("console", tmp_path)
    first, *rest = output.splitlines()
    assert "ERROR" in first
    assert "moorage.test: writing the blob failed" in first
    assert not first.startswith("{")
    assert any("ValueError: the disk is on fire" in line for line in rest)


_CLIENT_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import httpx
    from cli.logs import configure_logging
    from core.observability_settings import LogSettings

    configure_logging(LogSettings(format="json", level=sys.argv[1]))
    answer = lambda request: httpx.Response(503)
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        client.get("http://upstream.invalid/v2/")
    logging.getLogger("httpx").warning("the client gave up")
    logging.getLogger("moorage.test").info("the run ended")
    """
)


@pytest.mark.parametrize(("level", "request_lines"), [("info", 0), ("warning", 0), ("debug", 1)])
def test_outbound_requests_are_logged_only_at_debug(
    tmp_path: Path, level: str, request_lines: int
) -> None:
    # NOTE: the HTTP client's own line per request; its warnings always get through
    messages = [
        line["message"] for line in _json_lines(_run_script(_CLIENT_SCRIPT, level, tmp_path))
    ]
    requests = [m for m in messages if m.startswith("HTTP Request: GET http://upstream.invalid")]
    assert len(requests) == request_lines, messages
    assert "the client gave up" in messages
    assert ("the run ended" in messages) is (level != "warning")
