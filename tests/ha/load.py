"""A bounded push/pull load through the load balancer, with retrying clients.

Each client thread runs operations until it is told to stop, its operation count runs
out or its deadline passes. A *pusher* pushes a new image (a random layer, a config, a
manifest under a new tag); the image counts as committed once the manifest ``PUT``
answered 201. A *puller* pulls a committed image by digest and checks that the manifest
and every blob come back byte-identical (a difference fails the run at once).

Every HTTP request is one *attempt*, recorded with its times and outcome. A failed
attempt (a 5xx answer or a transport error) is retried after a short pause, at most
``MAX_TRIES`` times; the operation goes on with its next request once one succeeds. The
requests a client repeats are idempotent (content-addressed blob uploads, a manifest
``PUT`` of the same bytes), as registry clients rely on.

Availability of a time window is the share of its attempts that succeeded, and its
longest gap the longest time between two successive successful attempts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: Attempts of one request before the operation (and the run) fails.
MAX_TRIES = 120
#: Pause between two attempts of one request (seconds).
RETRY_PAUSE = 0.25
#: A request without an answer after this long counts as a hang (seconds).
REQUEST_TIMEOUT = 20.0
LAYER_BYTES = 64 * 1024


class LoadError(AssertionError):
    """The load saw something a registry must never do (wrong bytes, a hang, a 500)."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One HTTP request: when it ran, whether it succeeded, and why not."""

    started: float
    ended: float
    ok: bool
    status: int | None = None
    failure: str | None = None


@dataclass(frozen=True)
class Image:
    """A committed image: where it lives and the exact bytes of its parts."""

    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


@dataclass
class Ledger:
    """What every client did: attempts, committed images, unexpected answers."""

    attempts: list[Attempt] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def commit(self, image: Image) -> None:
        with self.lock:
            self.images.append(image)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def committed(self) -> list[Image]:
        with self.lock:
            return list(self.images)

    def window(self, start: float, end: float) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if start <= a.started < end]


@dataclass(frozen=True)
class Availability:
    """Requests and their success in one window."""

    requests: int
    succeeded: int
    longest_gap: float
    #: When the longest gap began, in seconds after the window's start.
    gap_began: float = 0.0
    #: The longest a failed request took to fail (seconds).
    slowest_failure: float = 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.succeeded / self.requests if self.requests else 100.0


def availability(attempts: list[Attempt], start: float) -> Availability:
    """Share of successful attempts and the longest time between two successes."""
    successes = sorted(a.ended for a in attempts if a.ok)
    gaps = [(b - a, a) for a, b in itertools.pairwise(successes)]
    longest, began = max(gaps, default=(0.0, start))
    failures = [a.ended - a.started for a in attempts if not a.ok]
    return Availability(
        len(attempts), len(successes), longest, began - start, max(failures, default=0.0)
    )


def unavailable_answer(response: httpx.Response) -> str | None:
    """Why a 5xx answer is not a proper outage answer (503 with an OCI error), or None."""
    if response.status_code != 503:
        return f"{response.status_code} instead of 503"
    if response.request.method == "HEAD":
        return None
    try:
        errors = response.json()["errors"]
        codes = {error["code"] for error in errors}
    except (ValueError, KeyError, TypeError):
        return f"503 without an OCI error body: {response.text[:120]!r}"
    if "UNAVAILABLE" not in codes:
        return f"503 with the codes {sorted(codes)}"
    return None


class RetryingClient:
    """One client of the registry: a token, and requests repeated until they succeed."""

    def __init__(self, base_url: str, password: str, ledger: Ledger) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT, follow_redirects=True)
        self._password = password
        self._ledger = ledger
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        expect: int,
        *,
        repository: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send the request until it answers ``expect``; record every attempt.

        Raises:
            LoadError: A 4xx other than a stale token's 401, or ``MAX_TRIES`` failures.
        """
        for _ in range(MAX_TRIES):
            headers = dict(kwargs.pop("headers", {}))
            if repository is not None:
                headers["Authorization"] = f"Bearer {self._token(repository)}"
            started = time.monotonic()
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException as exc:
                self._ledger.record(Attempt(started, time.monotonic(), False, None, "timeout"))
                self._ledger.violation(f"{method} {path}: no answer ({type(exc).__name__})")
                time.sleep(RETRY_PAUSE)
                continue
            except httpx.TransportError as exc:
                failure = type(exc).__name__
                self._ledger.record(Attempt(started, time.monotonic(), False, None, failure))
                time.sleep(RETRY_PAUSE)
                continue
            ended = time.monotonic()
            kwargs["headers"] = headers
            if response.status_code == expect:
                self._ledger.record(Attempt(started, ended, True, response.status_code))
                return response
            self._ledger.record(Attempt(started, ended, False, response.status_code))
            if response.status_code == 401 and repository is not None:
                self._tokens.pop(repository, None)
            elif response.status_code >= 500:
                wrong = unavailable_answer(response)
                if wrong is not None:
                    self._ledger.violation(f"{method} {path}: {wrong}")
            else:
                raise LoadError(f"{method} {path}: {response.status_code} {response.text[:200]}")
            time.sleep(RETRY_PAUSE)
        raise LoadError(f"{method} {path}: no success in {MAX_TRIES} attempts")

    def _token(self, repository: str) -> str:
        token = self._tokens.get(repository)
        if token is None:
            scope = f"repository:{repository}:pull,push"
            response = self.call(
                "GET", "/auth/token", 200, params={"scope": scope}, auth=("admin", self._password)
            )
            token = str(response.json()["token"])
            self._tokens[repository] = token
        return token

    # --- operations -------------------------------------------------------------------

    def push(self, repository: str) -> Image:
        """Push a new image under a new tag; return it once its manifest is stored."""
        layer = random.randbytes(LAYER_BYTES)
        config = json.dumps({"architecture": "amd64", "os": "linux", "id": uuid.uuid4().hex})
        blobs = {digest_of(part): part for part in (layer, config.encode())}
        for digest, data in blobs.items():
            self.call(
                "POST",
                f"/v2/{repository}/blobs/uploads/?digest={digest}",
                201,
                repository=repository,
                content=data,
            )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": digest_of(config.encode()),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}
                ],
            }
        ).encode()
        tag = f"t{uuid.uuid4().hex[:12]}"
        self.call(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            201,
            repository=repository,
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        return Image(repository, tag, manifest, blobs)

    def pull(self, image: Image) -> None:
        """Pull ``image`` by digest; any byte that differs is a violation."""
        repository = image.repository
        answer = self.call(
            "GET",
            f"/v2/{repository}/manifests/{image.digest}",
            200,
            repository=repository,
            headers={"Accept": OCI_MANIFEST},
        )
        if answer.content != image.manifest:
            self._ledger.violation(f"manifest {image.digest} of {repository} differs")
        for digest, data in image.blobs.items():
            blob = self.call("GET", f"/v2/{repository}/blobs/{digest}", 200, repository=repository)
            if blob.content != data:
                self._ledger.violation(f"blob {digest} of {repository} differs")


@dataclass
class Load:
    """Client threads pushing and pulling until stopped (bounded in count and time)."""

    base_url: str
    password: str
    repositories: list[str]
    pullers: int = 2
    max_operations: int = 2000
    max_seconds: float = 120.0
    ledger: Ledger = field(default_factory=Ledger)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        """Start one pusher per repository and ``pullers`` pullers."""
        self._stop.clear()
        self._errors.clear()
        deadline = time.monotonic() + self.max_seconds
        for repository in self.repositories:
            self._spawn(partial(self._push_one, repository=repository), deadline)
        for _ in range(self.pullers):
            self._spawn(self._pull_one, deadline)

    def _spawn(self, operation: Callable[[RetryingClient], None], deadline: float) -> None:
        thread = threading.Thread(target=self._run, args=(operation, deadline), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, operation: Callable[[RetryingClient], None], deadline: float) -> None:
        client = RetryingClient(self.base_url, self.password, self.ledger)
        try:
            for _ in range(self.max_operations):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                operation(client)
        except BaseException as exc:
            self._errors.append(exc)
        finally:
            client.close()

    def _pull_one(self, client: RetryingClient) -> None:
        committed = self.ledger.committed()
        if not committed:
            time.sleep(0.05)
            return
        client.pull(random.choice(committed))

    def _push_one(self, client: RetryingClient, *, repository: str) -> None:
        self.ledger.commit(client.push(repository))

    def stop(self) -> None:
        """Stop every thread (each finishes its current operation) and raise its error."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT * MAX_TRIES)
        self._threads.clear()
        if self._errors:
            raise self._errors[0]
