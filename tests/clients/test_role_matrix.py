"""Role x operation matrix (AZ-11) with real clients: crane, skopeo and oras, for every
project role, a robot, and anonymous pulls of a public project."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.clients.commands import ClientHome, make_client_home, run

if TYPE_CHECKING:
    from pathlib import Path

    from tests.clients.images import OciImage
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients

EXPECTED = {
    "admin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "guest": {"pull"},
    "limited-guest": {"pull"},
    "robot": {"pull", "push"},
    "anonymous": {"pull"},
}


def _admin(server: MoorageServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, auth=(server.admin_username, server.admin_password), timeout=30.0
    )


def _identity(api: httpx.Client, project: str, who: str) -> tuple[str, str] | None:
    if who == "anonymous":
        return None
    if who == "robot":
        body = api.post(
            f"/api/v1/projects/{project}/robots",
            json={"name": "ci", "permissions": [{"repository": "*", "actions": ["pull", "push"]}]},
        ).json()
        return str(body["name"]), str(body["secret"])
    name, password = f"{who.replace('-', '')}{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    assert (
        api.post("/api/v1/users", json={"username": name, "password": password}).status_code == 201
    )
    api.post(f"/api/v1/projects/{project}/members", json={"user": name, "role": who})
    return name, password


class Clients:
    def __init__(
        self,
        tools: dict[str, str],
        home: ClientHome,
        server: MoorageServer,
        creds: tuple[str, str] | None,
    ) -> None:
        self.tools, self.env, self.server, self.creds = tools, home.env(), server, creds
        if creds is not None:
            login = {"crane": ["auth", "login"], "oras": ["login", "--plain-http"]}
            for tool, verb in login.items():
                argv = [tools[tool], *verb, server.host_port, "-u", creds[0], "--password-stdin"]
                run(argv, env=self.env, stdin=creds[1])

    def ok(self, tool: str, *args: str) -> bool:
        argv = [self.tools[tool], *args]
        if tool == "crane":
            argv.insert(1, "--insecure")
        return run(argv, env=self.env, check=False).returncode == 0

    def skopeo_inspect(self, image: str) -> bool:
        creds = ["--creds", f"{self.creds[0]}:{self.creds[1]}"] if self.creds else ["--no-creds"]
        argv = [
            self.tools["skopeo"],
            "inspect",
            "--raw",
            "--tls-verify=false",
            *creds,
            f"docker://{image}",
        ]
        return run(argv, env=self.env, check=False).returncode == 0


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_role_matrix_with_real_clients(
    who: str,
    backend_registry: MoorageServer,
    crane: str,
    oras: str,
    skopeo: str,
    oci_image: OciImage,
    tmp_path: Path,
) -> None:
    api = _admin(backend_registry)
    project = f"m{secrets.token_hex(5)}"
    assert (
        api.post(
            "/api/v1/projects", json={"name": project, "public": who == "anonymous"}
        ).status_code
        == 201
    )
    admin_home = make_client_home(tmp_path / "admin")
    tools = {"crane": crane, "oras": oras, "skopeo": skopeo}
    admin_creds = (backend_registry.admin_username, backend_registry.admin_password)
    seeder = Clients(tools, admin_home, backend_registry, admin_creds)
    repo = f"{backend_registry.host_port}/{project}/app"
    assert seeder.ok("crane", "push", str(oci_image.layout), f"{repo}:seed")
    creds = _identity(api, project, who)
    clients = Clients(tools, make_client_home(tmp_path / "who"), backend_registry, creds)
    allowed = EXPECTED[who]
    assert clients.ok("crane", "manifest", f"{repo}:seed") == ("pull" in allowed)
    assert clients.ok("crane", "ls", repo) == ("pull" in allowed)
    assert clients.skopeo_inspect(f"{repo}:seed") == ("pull" in allowed)
    assert clients.ok("oras", "discover", "--plain-http", "--format", "json", f"{repo}:seed") == (
        "pull" in allowed
    )
    assert clients.ok("crane", "push", str(oci_image.layout), f"{repo}:mine") == ("push" in allowed)
    catalog = run(
        [crane, "--insecure", "catalog", backend_registry.host_port], env=clients.env, check=False
    )
    assert (f"{project}/app" in catalog.stdout.split()) == ("pull" in allowed)
    digest = oci_image.manifest_digest
    assert clients.ok("crane", "delete", f"{repo}@{digest}") == ("delete" in allowed)
