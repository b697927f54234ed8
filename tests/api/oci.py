"""A small OCI client over any httpx client (in-process TestClient or a real server)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def unique_project() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


@dataclass
class Pushed:
    digest: str
    payload: bytes
    blobs: list[str] = field(default_factory=list)


class OCIClient:
    """Talks to the registry as a client with a bearer token for the scopes it needs."""

    def __init__(self, client: httpx.Client, password: str, username: str = "admin") -> None:
        self.client = client
        self.username = username
        self.password = password
        self._tokens: dict[tuple[tuple[str, ...], bool], tuple[float, str]] = {}

    def token(self, *scopes: str, anonymous: bool = False) -> str:
        key = (scopes, anonymous)
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() - cached[0] < 120:
            return cached[1]
        token = self._fetch_token(scopes, anonymous)
        if self._complete(token, scopes):
            # NOTE: a partial grant (e.g. before the project exists) is not reused.
            self._tokens[key] = (time.monotonic(), token)
        return token

    @staticmethod
    def _complete(token: str, scopes: tuple[str, ...]) -> bool:
        claims = jwt.decode(token, options={"verify_signature": False})
        granted = {(e["type"], e["name"], a) for e in claims["access"] for a in e["actions"]}
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if any((kind, name, a) not in granted for a in actions.split(",")):
                return False
        return True

    def _fetch_token(self, scopes: tuple[str, ...], anonymous: bool) -> str:
        auth = None if anonymous else (self.username, self.password)
        response = self.client.get("/auth/token", params={"scope": list(scopes)}, auth=auth)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def headers(self, repo: str, actions: str = "pull,push,delete") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(f'repository:{repo}:{actions}')}"}

    def request(self, method: str, url: str, repo: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(repo), **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        response = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", repo, content=data
        )
        assert response.status_code == 201, response.text
        return digest

    def image(self, repo: str, layers: list[bytes] | None = None, **extra: Any) -> dict[str, Any]:
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}
        ).encode()
        layers = layers if layers is not None else [uuid.uuid4().bytes * 64]
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.push_blob(repo, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER, "digest": self.push_blob(repo, layer), "size": len(layer)}
                for layer in layers
            ],
            **extra,
        }

    def put_manifest(
        self,
        repo: str,
        reference: str,
        manifest: dict[str, Any] | bytes,
        media_type: str = OCI_MANIFEST,
    ) -> httpx.Response:
        payload = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        return self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            content=payload,
            headers={"Content-Type": media_type},
        )

    def push_image(self, repo: str, tag: str = "latest", **extra: Any) -> Pushed:
        manifest = self.image(repo, **extra)
        payload = json.dumps(manifest).encode()
        response = self.put_manifest(repo, tag, payload)
        assert response.status_code == 201, response.text
        return Pushed(digest_of(payload), payload, [manifest["config"]["digest"]])
