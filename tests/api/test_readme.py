"""The README's management API examples, run with curl against a running ``moorage api``.

Every ``curl`` command in the README's ``sh`` blocks runs in the order written, with
``$PASSWORD`` the admin password and ``http://127.0.0.1:5000`` replaced by the server's
address; each must succeed. The images the text says were pushed are pushed first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.oci import OCIClient
from tests.services.moorage import MoorageServer, start_moorage

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_URL = "http://127.0.0.1:5000"
#: What the README says was pushed before its repository and tag examples.
PUSHED = ("team/app:1.0", "team/tools/cli:1.0")
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def curl_examples(text: str) -> list[str]:
    """The ``curl`` commands of the ``sh`` blocks, continuation lines joined."""
    commands = []
    for block in _BLOCK.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.startswith("curl ")]
    return commands


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    workdir = tmp_path_factory.mktemp("readme")
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_STORAGE": "filesystem",
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
    }
    started = start_moorage(workdir, env)
    yield started
    started.stop()


def _push(server: MoorageServer, images: tuple[str, ...]) -> dict[str, str]:
    digests = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        oci = OCIClient(client, server.admin_password, server.admin_username)
        for image in images:
            repository, _, tag = image.partition(":")
            digests[image] = oci.push_image(repository, tag).digest
    return digests


def _run(server: MoorageServer, command: str, curl: str) -> tuple[int, str]:
    line = command.replace(EXAMPLE_URL, server.url).replace("curl ", f"{curl} -sS ", 1)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PASSWORD": server.admin_password}
    done = subprocess.run(
        ["/bin/bash", "-c", f"{line} -w '\\n%{{http_code}}'"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, (command, done.stderr)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_readme_curl_examples_work(server: MoorageServer) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed to run the README's examples"
    text = README.read_text()
    for image in PUSHED:
        assert f"`{image}`" in text
    commands = curl_examples(text)
    assert len(commands) >= 9
    digests: dict[str, str] = {}
    for command in commands:
        if "/repositories" in command and not digests:
            digests = _push(server, PUSHED)
        status, body = _run(server, command, curl)
        assert 200 <= status < 300, (command, status, body)
        if command.endswith("/repositories/tools/cli/tags/1.0"):
            assert json.loads(body)["digest"] == digests["team/tools/cli:1.0"]
    assert digests, "the README shows no repository example"
