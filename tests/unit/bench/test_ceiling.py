"""The ceiling benchmark: a bare app on granian, loaded as the manifest cases are."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

from bench.ceiling import _serve, main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_the_bare_app_answers_like_a_manifest_read(tmp_path: Path) -> None:
    process, url = _serve(tmp_path, workers=1)
    try:
        with urllib.request.urlopen(url, timeout=10) as got:  # noqa: S310 - loopback
            body = got.read()
            assert got.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
            assert int(got.headers["Content-Length"]) == len(body)
        assert json.loads(body)["schemaVersion"] == 2
        head = urllib.request.Request(url, method="HEAD")  # noqa: S310 - loopback
        with urllib.request.urlopen(head, timeout=10) as got:  # noqa: S310 - loopback
            assert got.read() == b""
            assert int(got.headers["Content-Length"]) == len(body)
    finally:
        process.stop()


def test_one_run_measures_both_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds", "1", "--repeats", "1", "--workers", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["method"] for line in lines[:-1]} == {"GET", "HEAD"}
    assert all(line["req_s"] > 0 for line in lines[:-1])
    assert lines[-1]["get_req_s"] > 0
    assert lines[-1]["head_req_s"] > 0
