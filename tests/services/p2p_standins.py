"""Stand-ins for the P2P systems preheat talks to, on loopback, for the tests.

The real Dragonfly manager needs MySQL and Redis (and its scheduler and seed peers), and
Kraken a cluster of agents, origins, trackers and build-index: none can run here. These
stand-ins speak the documented APIs instead:

- :class:`DragonflyStandIn` -- the manager's Open API: ``POST /oapi/v1/jobs`` (Bearer
  personal access token), ``GET /oapi/v1/jobs/<id>``, ``GET /healthy``. Like the real
  manager's seed peer it *fetches the image from the registry* with the headers it was
  handed (the manifest, then the config and every layer) and reports one success task
  per blob; it also tries a push and a pull of another repository with the same token,
  so a test sees what that token may do. ``fail`` makes the next jobs end in ``FAILURE``
  with failure tasks; ``hold`` keeps jobs running until it is cleared.
- :class:`KrakenStandIn` -- Kraken proxy's ``POST /registry/notifications`` (a
  distribution notification envelope) and ``GET /health``.

An aiohttp app in a thread of its own (own event loop), like the webhook receiver; with an
``ssl_context`` it serves HTTPS (a certificate of the tests' own CA: an instance reaching
it must be ``insecure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


#: Longest a held job stays running when nobody releases it (seconds).
HOLD_BOUND = 120.0


@dataclass
class Fetch:
    """One registry request the stand-in made for a job."""

    what: str
    url: str
    status: int


@dataclass
class Job:
    id: int
    body: dict[str, Any]
    state: str = "PENDING"
    fetches: list[Fetch] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Server:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _note(self, request: web.Request) -> None:
        with self._lock:
            self.requests.append((request.method, request.path, dict(request.headers)))

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                app = web.Application()
                self.routes(app)
                self._runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
                loop.run_until_complete(site.start())
                server: Any = site._server
                self.port = server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
        self._loop = self._thread = self._runner = None


@dataclass
class DragonflyStandIn(_Server):
    """The Dragonfly manager's Open API (see the module docstring)."""

    token: str = "dfpat"
    #: ``ok`` or ``fail`` (the next jobs end in ``FAILURE``).
    mode: str = "ok"
    #: A repository the token must not reach (probed with every job).
    other_repository: str = ""
    #: While set, jobs stay ``RUNNING`` after their fetches (bounded by :data:`HOLD_BOUND`).
    hold: bool = False
    jobs: dict[int, Job] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/oapi/v1/jobs", self._create)
        app.router.add_get("/oapi/v1/jobs/{id}", self._read)
        app.router.add_get("/healthy", self._healthy)

    def job_list(self) -> list[Job]:
        with self._lock:
            return list(self.jobs.values())

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _healthy(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(text="OK")

    async def _create(self, request: web.Request) -> web.Response:
        self._note(request)
        if not self._authorized(request):
            return web.json_response({"message": "unauthorized"}, status=401)
        body = await request.json()
        if body.get("type") != "preheat" or not isinstance(body.get("args"), dict):
            return web.json_response({"message": "bad job"}, status=400)
        with self._lock:
            job = Job(next(self._ids), body)
            self.jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job, self.mode))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return web.json_response(
            {"id": job.id, "task_id": f"group_{job.id}", "type": "preheat", "state": job.state}
        )

    async def _read(self, request: web.Request) -> web.Response:
        self._note(request)
        if not self._authorized(request):
            return web.json_response({"message": "unauthorized"}, status=401)
        with self._lock:
            job = self.jobs.get(int(request.match_info["id"]))
        if job is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response(
            {"id": job.id, "type": "preheat", "state": job.state, "result": job.result}
        )

    async def _run(self, job: Job, mode: str) -> None:
        """Fetch what the job names like a seed peer does, then settle the job."""
        job.state = "RUNNING"
        args = job.body["args"]
        headers = dict(args.get("headers") or {})
        url = str(args["url"])
        base, _, rest = url.partition("/v2/")
        repository = rest.rsplit("/manifests/", 1)[0]
        successes: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http:
            async with http.get(url, headers={**headers, "Accept": _ACCEPT}) as answer:
                payload = await answer.read()
                job.fetches.append(Fetch("manifest", url, answer.status))
            blobs: list[str] = []
            with contextlib.suppress(ValueError, KeyError, TypeError):
                manifest = json.loads(payload)
                blobs = [manifest["config"]["digest"]] + [
                    layer["digest"] for layer in manifest["layers"]
                ]
            for digest in blobs:
                blob_url = f"{base}/v2/{repository}/blobs/{digest}"
                async with http.get(blob_url, headers=headers) as answer:
                    await answer.read()
                    job.fetches.append(Fetch("blob", blob_url, answer.status))
                entry = {"url": blob_url, "hostname": "seed-peer-1", "ip": "10.0.0.1"}
                if answer.status == 200 and mode == "ok":
                    successes.append(entry)
                else:
                    failures.append(
                        {**entry, "description": f"seed peer download failed ({answer.status})"}
                    )
            push_url = f"{base}/v2/{repository}/blobs/uploads/"
            async with http.post(push_url, headers=headers) as answer:
                job.fetches.append(Fetch("push", push_url, answer.status))
            if self.other_repository:
                other = f"{base}/v2/{self.other_repository}/tags/list"
                async with http.get(other, headers=headers) as answer:
                    job.fetches.append(Fetch("other", other, answer.status))
        for _ in range(int(HOLD_BOUND / 0.05)):
            if not self.hold:
                break
            await asyncio.sleep(0.05)
        clusters = job.body.get("scheduler_cluster_ids") or [1]
        job.result = {
            "job_states": [
                {
                    "state": "SUCCESS" if not failures and successes else "FAILURE",
                    "results": [
                        {
                            "scheduler_cluster_id": clusters[0],
                            "success_tasks": successes,
                            "failure_tasks": failures,
                        }
                    ],
                }
            ]
        }
        job.state = "SUCCESS" if not failures and successes else "FAILURE"


@dataclass
class KrakenStandIn(_Server):
    """Kraken proxy's notification receiver (see the module docstring)."""

    notifications: list[dict[str, Any]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/registry/notifications", self._notify)
        app.router.add_get("/health", self._health)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.notifications)

    async def _health(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(text="OK")

    async def _notify(self, request: web.Request) -> web.Response:
        self._note(request)
        envelope = json.loads(await request.read())
        with self._lock:
            self.notifications.append(
                {"content_type": request.headers.get("Content-Type", ""), **envelope}
            )
        return web.Response(status=200)


def start_dragonfly(token: str = "dfpat") -> DragonflyStandIn:  # noqa: S107 - a test PAT
    server = DragonflyStandIn(token=token)
    server.start()
    return server


def start_kraken(ssl_context: ssl.SSLContext | None = None) -> KrakenStandIn:
    server = KrakenStandIn(ssl_context=ssl_context)
    server.start()
    return server
