"""A loopback OIDC-style issuer for the tests: serves its JWKS (and a discovery
document) over HTTP and mints Kubernetes service-account-style tokens."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.services.process import LOOPBACK


@dataclass
class LoopbackIssuer:
    server: ThreadingHTTPServer
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = "k8s-test-key"

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/openid/v1/jwks"

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def mint(self, namespace: str, name: str, audience: str, ttl: int = 600, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}},
            **extra,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_issuer() -> LoopbackIssuer:
    holder: dict[str, LoopbackIssuer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder["issuer"]
            if self.path == "/openid/v1/jwks":
                body = issuer.jwks()
            elif self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": issuer.jwks_url}
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            del format, args

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    issuer = LoopbackIssuer(server)
    holder["issuer"] = issuer
    threading.Thread(target=server.serve_forever, name="test-issuer", daemon=True).start()
    return issuer
