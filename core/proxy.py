"""Proxy projects: a project that is a pull-through cache of an upstream registry endpoint.

A project becomes a proxy when its ``proxy`` policy document names an endpoint
(:class:`ProxyBinding`). The ``/v2`` pipeline asks :class:`ProxyCache` (its content
resolver, ``core.pipeline.ContentResolver``) only for repositories of such projects, so
other projects pay one dictionary lookup.

Reads:
- A manifest by digest, or by tag within the freshness time, is served from the cache.
- A tag past its freshness time is revalidated with one upstream ``HEAD`` (not counted as
  a pull by Docker Hub); the same digest is served from the cache, a new one is fetched.
- A miss fetches the manifest (one upstream ``GET`` per process however many pulls ask at
  once), verifies its digest, serves it, and fills the cache in the background: every
  blob (and, for an index, every child manifest) is downloaded into the project, in the
  manifest's order and ``fill_concurrency`` at a time (one by default: just ahead of a
  client that pulls blob after blob, leaving it the bandwidth), then the manifest is
  stored and tagged. A cached manifest therefore never references a blob the
  cache lacks (the database stays the only truth), and quota, retention and GC treat
  cached content like pushed content.
- A blob miss joins or starts the blob's single flight (``core.proxy_flights``): one
  upstream download per process, streamed to every waiting client while it is written to
  the cache and visible only once its size and digest are verified.
- When the upstream is down (or refuses us), a cached copy is served if the binding allows
  stale copies; without one the pull fails with ``UNAVAILABLE`` naming the reason.

Across API processes: the processes of one host (sharing a data directory) take turns
through a file lock per blob (``FetchLocks``), so a host downloads a blob once; the one
downloading publishes where its spool is (``FlightNotices``) and the others stream their
pulls from it as it grows (``core.proxy_flights``), or serve the blob from the cache once
their peer filled it. Replicas on other hosts each
have their own locks, so duplicates are bounded by the number of hosts, and once any of
them cached the blob every later pull anywhere is a local hit.

Writes: pushes (manifest ``PUT``, uploads) into a proxy project are refused with
``DENIED`` at request start; deletes stay allowed to those with delete rights.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio.to_thread

from core.digests import Digest, Hasher
from core.endpoints import DOCKER_HUB_HOST, EndpointRecord, EndpointService, EndpointType
from core.errors import OCIErrorCode, RegistryError
from core.manifests import parse_manifest
from core.names import Reference, RepositoryName
from core.pipeline import OCIRequest, OCIRoute, ResolvedBlob
from core.ports import BlobStore, Metadata
from core.proxy_flights import (
    BlobFlight,
    CachedElsewhereError,
    FetchLocks,
    FlightFailedError,
    FlightNotices,
    Notice,
    Spool,
    Spools,
)
from core.proxy_settings import ProxySettings
from core.records import ManifestRecord, PushTarget, UploadRecord
from core.services.manifests import ManifestService
from core.services.repositories import RepositoryService
from core.services.uploads import ChunkWriter, UploadService
from core.upstream_ports import (
    BlobDownload,
    UpstreamError,
    UpstreamFactory,
    UpstreamInvalidError,
    UpstreamManifest,
    UpstreamNotFoundError,
    UpstreamRegistry,
    UpstreamUnavailableError,
)

_log = logging.getLogger("moorage.proxy")

#: The policy document kind that binds a project to an endpoint.
PROXY = "proxy"
_WRITES = frozenset({"PUT", "POST", "PATCH"})
_PUSH_ROUTES = frozenset({OCIRoute.MANIFEST, OCIRoute.UPLOADS, OCIRoute.UPLOAD})
_MISSING = frozenset({OCIErrorCode.NAME_UNKNOWN, OCIErrorCode.MANIFEST_UNKNOWN})
_BLOB_MISSING = frozenset({OCIErrorCode.NAME_UNKNOWN, OCIErrorCode.BLOB_UNKNOWN})
#: Tags whose freshness one process remembers before it forgets them all at once.
_MEMORY_MAX = 65536
#: How long a process waits for another one's download: this many upstream timeouts.
_LOCK_WAIT_FACTOR = 10
_LOCK_POLL_SECONDS = 0.2
#: How often a process following another one's download looks at its progress (and,
#: backing off by half each time up to the lock's poll, for a notice of a held lock).
_PEER_POLL_SECONDS = 0.01
#: How long a finished flight still serves pulls that missed the cache just before.
_LINGER_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _CacheUpload:
    """The cache's upload of one download: where, which session, its open chunk."""

    target: PushTarget
    upload: UploadRecord
    chunk: ChunkWriter
    #: The upload's local file as a spool, when the blob store keeps uploads in files:
    #: the flight reads the download there and writes it nowhere else.
    view: Spool | None


@dataclass(frozen=True, slots=True)
class ProxyBinding:
    """A project's proxy setting: the endpoint it caches and its overrides."""

    endpoint: str | None
    freshness_seconds: int | None = None
    serve_stale: bool | None = None

    @classmethod
    def load(cls, body: str | None) -> ProxyBinding:
        document: Any = json.loads(body) if body else None
        if not isinstance(document, dict):
            return cls(None)
        return cls(
            endpoint=document.get("endpoint"),
            freshness_seconds=document.get("freshness_seconds"),
            serve_stale=document.get("serve_stale"),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "endpoint": self.endpoint,
                "freshness_seconds": self.freshness_seconds,
                "serve_stale": self.serve_stale,
            }
        )


def load_bindings(metadata: Metadata) -> dict[str, ProxyBinding]:
    """Every project's binding that names an endpoint (one read transaction)."""
    found: dict[str, ProxyBinding] = {}
    with metadata.read() as session:
        for name in session.policies.policy_projects(PROXY):
            project = session.projects.get(name)
            if project is None:
                continue
            binding = ProxyBinding.load(session.policies.get(project.id, PROXY))
            if binding.endpoint:
                found[name] = binding
    return found


def is_proxy_project(metadata: Metadata, project: str) -> bool:
    """Whether ``project`` is bound to an upstream endpoint now (one read transaction).

    For writers outside the ``/v2`` pipeline (promotions), which refuse such a project as
    the pipeline's push refusal does; the pipeline asks its reloaded view instead.
    """
    with metadata.read() as session:
        record = session.projects.get(project)
        if record is None:
            return False
        return bool(ProxyBinding.load(session.policies.get(record.id, PROXY)).endpoint)


def push_refused(repository: str) -> RegistryError:
    """``DENIED`` for a write into a proxy project: its content comes from the upstream only."""
    project = repository.partition("/")[0]
    return RegistryError(
        OCIErrorCode.DENIED,
        f"project {project!r} is a proxy cache of an upstream registry; pushes into it are refused",
    ).with_detail({"name": repository[:255]})


def upstream_repository(endpoint: EndpointRecord, name: RepositoryName) -> str:
    """The upstream's name of ``name``: the path inside the project, Docker Hub style.

    Docker Hub keeps official images under ``library/``: ``proxy/alpine`` is fetched as
    ``library/alpine`` (``proxy/library/alpine`` names the same upstream repository).
    """
    path = name.path
    docker_hub = endpoint.type is EndpointType.DOCKER_HUB or endpoint.host == DOCKER_HUB_HOST
    if docker_hub and "/" not in path:
        return f"library/{path}"
    return path


class ProxyBindings:
    """This process's view of which projects are proxies, reloaded in the background.

    :meth:`of` is a dictionary lookup (no I/O on the request path); :meth:`run` reloads
    the view every ``refresh_seconds``, so a binding made through another process is seen
    here within that time. One made through this process is seen at once (:meth:`put`).
    """

    def __init__(self, load: Callable[[], dict[str, ProxyBinding]], refresh_seconds: float) -> None:
        self._load = load
        self._refresh = refresh_seconds
        self._bindings: dict[str, ProxyBinding] = {}
        #: Bumped by every :meth:`put`, so a reload that read before it is not applied.
        self._generation = 0

    async def reload(self) -> None:
        """Load every binding; a load that raced with :meth:`put` is dropped and retried."""
        for _ in range(3):
            generation = self._generation
            loaded = await anyio.to_thread.run_sync(self._load)
            if generation == self._generation:
                self._bindings = loaded
                return

    async def run(self) -> None:
        """Reload every ``refresh_seconds`` until cancelled (failures keep the last view)."""
        while True:
            await asyncio.sleep(self._refresh)
            try:
                await self.reload()
            except Exception:  # noqa: BLE001 - keep serving the last view
                _log.exception("reloading proxy bindings failed")

    def of(self, project: str) -> ProxyBinding | None:
        return self._bindings.get(project)

    def projects_of(self, endpoint: str) -> list[str]:
        """The proxy projects bound to ``endpoint`` (in the current view)."""
        return sorted(p for p, b in self._bindings.items() if b.endpoint == endpoint)

    def put(self, project: str, binding: ProxyBinding) -> None:
        """Apply a binding this process just stored."""
        self._generation += 1
        if binding.endpoint:
            self._bindings[project] = binding
        else:
            self._bindings.pop(project, None)


class ProxyCache:
    """The content resolver of proxy projects (see the module's contract)."""

    def __init__(
        self,
        *,
        bindings: ProxyBindings,
        endpoints: EndpointService,
        upstreams: UpstreamFactory,
        manifests: ManifestService,
        repositories: RepositoryService,
        uploads: UploadService,
        spools: Spools,
        locks: FetchLocks,
        notices: FlightNotices,
        store: BlobStore,
        settings: ProxySettings,
        manifest_max_bytes: int,
        blob_max_bytes: int,
    ) -> None:
        self.bindings = bindings
        self._endpoints = endpoints
        self._upstreams = upstreams
        self._manifests = manifests
        self._repositories = repositories
        self._uploads = uploads
        self._spools = spools
        self._locks = locks
        self._notices = notices
        self._store = store
        self._settings = settings
        self._manifest_max = manifest_max_bytes
        self._blob_max = blob_max_bytes
        self._fresh: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], UpstreamManifest] = {}
        self._manifest_fetches: dict[tuple[int, str, str], asyncio.Task[UpstreamManifest]] = {}
        self._fills: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._flights: dict[tuple[str, str], BlobFlight] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Upstream blob downloads started by this process (for diagnostics and tests).
        self.blob_downloads = 0

    # the pipeline's questions

    def covers(self, repository: str) -> bool:
        """Whether ``repository`` lies in a proxy project (a dictionary lookup)."""
        project = repository.partition("/")[0]
        return self.bindings.of(project) is not None

    async def refuse_pushes(self, request: OCIRequest) -> None:
        """Request-start hook: pushes into a proxy project are refused with ``DENIED``."""
        if request.method not in _WRITES or request.route not in _PUSH_ROUTES:
            return
        repository = request.repository or ""
        if self.covers(repository):
            raise push_refused(repository)

    # manifests

    async def manifest(self, name: RepositoryName, reference: Reference) -> ManifestRecord:
        """The manifest to serve for a pull in a proxy project (cached, revalidated or fetched).

        Raises:
            RegistryError: ``MANIFEST_UNKNOWN`` when neither cache nor upstream has it,
                ``UNAVAILABLE`` when the upstream failed and no cached copy may be served.
        """
        binding = self.bindings.of(name.project) or ProxyBinding(None)
        local = await self._local_manifest(name, reference)
        key = (str(name), str(reference))
        if local is not None and (reference.digest is not None or self._is_fresh(key)):
            return local
        pending = self._pending.get(key)
        if pending is not None and local is None and self._is_fresh(key):
            return _unstored(pending)
        endpoint, upstream = await self._upstream(binding)
        repo = upstream_repository(endpoint, name)
        try:
            if local is not None and reference.tag is not None:
                head = await upstream.head_manifest(repo, reference.tag)
                if head.digest == local.digest:
                    self._mark_fresh(key, binding)
                    return local
                fetched = await self._fetch_manifest(endpoint, upstream, repo, head.digest)
            else:
                fetched = await self._fetch_manifest(endpoint, upstream, repo, str(reference))
        except UpstreamNotFoundError as exc:
            raise RegistryError(OCIErrorCode.MANIFEST_UNKNOWN, str(exc)).with_detail(
                {"reference": str(reference)}
            ) from exc
        except UpstreamError as exc:
            if local is not None and self._serves_stale(binding):
                _log.warning("serving cached %s:%s, upstream failed: %s", name, reference, exc)
                return local
            raise _unavailable(endpoint.name, exc) from exc
        self._mark_fresh(key, binding)
        self._pending[key] = fetched
        self._start_fill(name, reference.tag, fetched, endpoint, upstream, repo, key)
        return _unstored(fetched)

    async def _local_manifest(
        self, name: RepositoryName, reference: Reference
    ) -> ManifestRecord | None:
        """The cached manifest, or ``None`` if it is not cached.

        Read on the event loop when that never waits (SQLite), else on a worker thread.
        """
        try:
            local = self._manifests.read_nowait(name, reference)
            if local is None:
                local = await anyio.to_thread.run_sync(self._manifests.read, name, reference)
        except RegistryError as exc:
            if exc.code in _MISSING:
                return None
            raise
        return local

    def _remember(self) -> None:
        """Keep the per-tag memories bounded (forgetting only costs a revalidation)."""
        if len(self._fresh) > _MEMORY_MAX:
            self._fresh.clear()

    def _is_fresh(self, key: tuple[str, str]) -> bool:
        return self._fresh.get(key, 0.0) > time.monotonic()

    def _mark_fresh(self, key: tuple[str, str], binding: ProxyBinding) -> None:
        seconds = binding.freshness_seconds
        if seconds is None:
            seconds = self._settings.freshness_seconds
        self._remember()
        self._fresh[key] = time.monotonic() + seconds

    def _serves_stale(self, binding: ProxyBinding) -> bool:
        return (
            binding.serve_stale if binding.serve_stale is not None else self._settings.serve_stale
        )

    async def _upstream(self, binding: ProxyBinding) -> tuple[EndpointRecord, UpstreamRegistry]:
        endpoint = None
        if binding.endpoint:
            endpoint = await anyio.to_thread.run_sync(self._endpoints.find, binding.endpoint)
        if endpoint is None:
            raise RegistryError(
                OCIErrorCode.UNAVAILABLE,
                f"the proxy project's endpoint {binding.endpoint!r} does not exist",
            )
        return endpoint, self._upstreams.client(endpoint)

    async def _fetch_manifest(
        self, endpoint: EndpointRecord, upstream: UpstreamRegistry, repo: str, reference: str
    ) -> UpstreamManifest:
        """One upstream ``GET`` per manifest at a time in this process; verified."""
        key = (endpoint.id, repo, reference)
        task = self._manifest_fetches.get(key)
        if task is None:
            task = self._spawn(self._get_manifest(upstream, repo, reference))
            self._manifest_fetches[key] = task
            task.add_done_callback(lambda _t: self._manifest_fetches.pop(key, None))
        return await asyncio.shield(task)

    async def _get_manifest(
        self, upstream: UpstreamRegistry, repo: str, reference: str
    ) -> UpstreamManifest:
        fetched = await upstream.get_manifest(repo, reference, self._manifest_max)
        try:
            parsed = parse_manifest(fetched.payload, fetched.media_type or None)
        except RegistryError as exc:
            raise UpstreamInvalidError(f"upstream manifest is invalid: {exc.message}") from exc
        return UpstreamManifest(fetched.digest, parsed.media_type, fetched.payload)

    def _start_fill(
        self,
        name: RepositoryName,
        tag: str | None,
        fetched: UpstreamManifest,
        endpoint: EndpointRecord,
        upstream: UpstreamRegistry,
        repo: str,
        key: tuple[str, str],
    ) -> None:
        fill_key = (str(name), f"{fetched.digest}#{tag or ''}")
        if fill_key in self._fills:
            return

        async def fill() -> None:
            slots = asyncio.Semaphore(self._settings.fill_concurrency)
            try:
                await self._fill(name, tag, fetched, endpoint, upstream, repo, slots, pulled=True)
            except Exception as exc:  # noqa: BLE001 - the pull was served; log the fill
                _log.warning("caching %s@%s failed: %s", name, fetched.digest, exc)
            finally:
                self._fills.pop(fill_key, None)
                self._pending.pop(key, None)

        self._fills[fill_key] = self._spawn(fill())

    async def _fill(
        self,
        name: RepositoryName,
        tag: str | None,
        fetched: UpstreamManifest,
        endpoint: EndpointRecord,
        upstream: UpstreamRegistry,
        repo: str,
        slots: asyncio.Semaphore,
        *,
        pulled: bool = False,
    ) -> None:
        """Cache what ``fetched`` references, then the manifest itself (and its tag).

        The blobs are fetched in the manifest's order (config, then layers), at most
        ``slots`` at once over the whole fill (an index's children included): the fill
        runs just ahead of a client that pulls one blob after another, and a blob a
        client asks for is downloaded at once, never queued behind the fill (its pull
        starts the blob's flight, which the fill then joins).
        ``pulled``: the manifest is the one a client pulled (not an index's child), so
        its pull time is recorded once it is stored (retention by pull time).
        """
        parsed = parse_manifest(fetched.payload, fetched.media_type)
        for child in parsed.children:
            digest = Digest.parse(str(child.digest))
            stored = await self._local_manifest(name, Reference(digest=digest))
            if stored is None:
                manifest = await self._fetch_manifest(endpoint, upstream, repo, str(digest))
                await self._fill(name, None, manifest, endpoint, upstream, repo, slots)

        async def one(digest: str) -> None:
            async with slots:
                await self.ensure_blob(name, digest, upstream, repo)

        # NOTE: in the manifest's order, each digest once (a semaphore admits in order)
        blobs = dict.fromkeys(str(d.digest) for d in parsed.blobs if not d.nondistributable)
        await asyncio.gather(*(one(digest) for digest in blobs))
        await anyio.to_thread.run_sync(self._store_manifest, name, tag, fetched, pulled)

    def _store_manifest(
        self, name: RepositoryName, tag: str | None, fetched: UpstreamManifest, pulled: bool
    ) -> None:
        repository = self._repositories.ensure(name, create_project=False)
        reference = Reference(tag=tag) if tag else Reference(digest=Digest.parse(fetched.digest))
        self._manifests.put(repository, reference, fetched.payload, fetched.media_type)
        if pulled:
            stored = self._manifests.read(name, Reference(digest=Digest.parse(fetched.digest)))
            record = self._manifests.pull_recording(stored)
            if record is not None:
                record()

    # blobs

    async def blob(self, name: RepositoryName, digest: Digest, *, head: bool) -> ResolvedBlob:
        """A blob the cache lacks: its size (``head``) or its bytes, from the upstream.

        Raises:
            RegistryError: ``BLOB_UNKNOWN`` when the upstream does not have it,
                ``UNAVAILABLE`` when the upstream failed.
        """
        binding = self.bindings.of(name.project) or ProxyBinding(None)
        endpoint, upstream = await self._upstream(binding)
        repo = upstream_repository(endpoint, name)
        if head:
            try:
                size = await upstream.head_blob(repo, str(digest))
            except UpstreamNotFoundError as exc:
                raise _blob_unknown(digest, str(exc)) from exc
            except UpstreamError as exc:
                raise _unavailable(endpoint.name, exc) from exc
            return ResolvedBlob(str(digest), size, None)
        flight = self._flight(name, str(digest), upstream, repo)
        chunks = flight.follow()
        try:
            size = await flight.wait_size()
        except CachedElsewhereError:
            await chunks.aclose()
            return await anyio.to_thread.run_sync(self._from_cache, name, digest)
        except FlightFailedError as exc:
            await chunks.aclose()
            if "not found upstream" in str(exc):
                raise _blob_unknown(digest, str(exc)) from exc
            raise RegistryError(
                OCIErrorCode.UNAVAILABLE, f"upstream {endpoint.name!r}: {exc}"
            ) from exc
        return ResolvedBlob(str(digest), size, chunks)

    def _from_cache(self, name: RepositoryName, digest: Digest) -> ResolvedBlob:
        """A blob another process cached while this one waited for its lock."""
        repository = self._repositories.require(name)
        blob = self._repositories.blob(repository, digest)
        chunks = _read_async(self._store, repository.storage_id, digest)
        return ResolvedBlob(str(digest), blob.size, chunks)

    async def ensure_blob(
        self, name: RepositoryName, digest: str, upstream: UpstreamRegistry, repo: str
    ) -> None:
        """Until ``digest`` is cached in ``name`` (joining or starting its flight)."""
        if await anyio.to_thread.run_sync(self._has_blob, name, digest):
            return
        flight = self._flight(name, digest, upstream, repo)
        try:
            await flight.wait_done()
        except FlightFailedError as exc:
            raise UpstreamInvalidError(str(exc)) from exc

    def _has_blob(self, name: RepositoryName, digest: str) -> bool:
        try:
            repository = self._repositories.require(name)
            self._repositories.blob(repository, Digest.parse(digest))
        except RegistryError as exc:
            if exc.code in _BLOB_MISSING:
                return False
            raise
        return True

    def _flight(
        self, name: RepositoryName, digest: str, upstream: UpstreamRegistry, repo: str
    ) -> BlobFlight:
        key = (name.project, digest)
        flight = self._flights.get(key)
        # NOTE: a failed flight stays in the table until its leader has cleaned up; a pull
        # arriving meanwhile starts a download of its own instead of joining the failure
        if flight is None or flight.failed:
            flight = BlobFlight(self._spools.new())
            self._flights[key] = flight
            self._spawn(self._download(key, flight, name, digest, upstream, repo))
        return flight

    async def _download(
        self,
        key: tuple[str, str],
        flight: BlobFlight,
        name: RepositoryName,
        digest_text: str,
        upstream: UpstreamRegistry,
        repo: str,
    ) -> None:
        """The leader of a flight: download, spool and cache; verify; then publish.

        Or, when another process of the host holds the download, follow it (or take the
        blob from the cache it filled).
        """
        digest = Digest.parse(digest_text)
        lock_key = f"{name.project}/{digest_text}"
        release: Callable[[], None] | None = None
        try:
            release = await self._lead(name, digest_text, lock_key, flight)
            if release is None:
                if flight.follows_peer:
                    await flight.finish()
                else:
                    await flight.cached_elsewhere()
                return
            # NOTE: a notice left by a process that died holding the lock is not ours
            self._notices.withdraw(lock_key)
            if flight.follows_peer:
                await flight.fail("the download in another API process failed")
                return
            self.blob_downloads += 1
            await self._fetch(flight, name, digest, lock_key, upstream.blob(repo, digest_text))
            await flight.finish()
        except (UpstreamError, RegistryError, OSError) as exc:
            _log.warning("proxy download of %s for %s failed: %s", digest, name, exc)
            await flight.fail(_failure(exc))
        except BaseException as exc:
            await flight.fail(_failure(exc))
            raise
        finally:
            if release is not None:
                self._notices.withdraw(lock_key)
                release()
            if flight.done and not flight.follows_peer:
                # NOTE: a pull that missed the cache just before the blob landed joins
                # this finished flight (and reads its spool) instead of downloading again;
                # a followed download finished only once the blob was in the cache
                loop = asyncio.get_running_loop()
                loop.call_later(_LINGER_SECONDS, self._land, key, flight)
            else:
                self._land(key, flight)

    async def _fetch(
        self,
        flight: BlobFlight,
        name: RepositoryName,
        digest: Digest,
        lock_key: str,
        response: AbstractAsyncContextManager[BlobDownload],
    ) -> None:
        """Download into the cache (and the spool), telling the host's others as it goes."""
        # NOTE: the cache's upload is opened while the upstream is asked
        opening = asyncio.create_task(anyio.to_thread.run_sync(self._open_cache_upload, name))
        taken = False
        try:
            async with response as download:
                size = _bounded(download.size, self._blob_max, digest)
                cache = await opening
                if cache.view is not None:
                    flight.adopt(cache.view)
                await flight.started(size)
                notice = Notice(flight.spool.name(), size, verified=False)
                self._notices.publish(lock_key, notice)
                verified = partial(self._notices.publish, lock_key, replace(notice, verified=True))
                taken = True
                await self._cache_blob(flight, digest, size, download.chunks(), cache, verified)
        finally:
            if not taken:
                await self._drop_unused(opening)

    async def _lead(
        self, name: RepositoryName, digest: str, key: str, flight: BlobFlight
    ) -> Callable[[], None] | None:
        """This host's lock of the download, or ``None`` once another process cached it.

        API processes sharing a data directory take turns: a process that finds the lock
        held follows the holder's download while it has a notice out (``flight`` then
        reads the holder's spool), and serves the blob from the cache once the holder
        stored it (or downloads it itself if the holder failed before it was followed).
        ``key`` is the blob's lock key on the host (``<project>/<digest>``).
        """
        deadline = time.monotonic() + self._settings.timeout_seconds * _LOCK_WAIT_FACTOR
        look_in_cache = 0.0
        pause = _PEER_POLL_SECONDS
        while True:
            release = self._locks.try_lock(key)
            now = time.monotonic()
            if release is not None or now >= look_in_cache:
                look_in_cache = now + _LOCK_POLL_SECONDS
                cached = await anyio.to_thread.run_sync(self._has_blob, name, digest)
                if release is not None and cached:
                    release()
                    return None
                if release is not None or cached:
                    return release
            if now > deadline:
                raise UpstreamUnavailableError("another API process is still downloading the blob")
            notice = self._notices.look(key)
            if notice is not None and not flight.follows_peer:
                self._follow_peer(flight, notice.spool)
            if notice is not None and notice.spool == flight.peer_spool:
                await flight.peer_progress(notice)
            elif notice is not None and flight.follows_peer:
                raise UpstreamUnavailableError("the download in another API process failed")
            # NOTE: the holder publishes once its upstream answered: look again soon
            pause = _PEER_POLL_SECONDS if notice else min(pause * 1.5, _LOCK_POLL_SECONDS)
            await asyncio.sleep(pause)

    def _follow_peer(self, flight: BlobFlight, spool: str) -> None:
        """Make ``flight`` read another process's download from its ``spool`` file.

        The file is opened now, while the peer still holds its lock: once it is open, the
        followers read it even after the peer finished (and moved it into the cache).
        """
        try:
            view = self._spools.over(spool)
        except OSError:  # NOTE: its download just ended
            return
        try:
            flight.redirect(view)
        except OSError:
            view.discard()

    def _land(self, key: tuple[str, str], flight: BlobFlight) -> None:
        """Forget a flight and remove its spool (followers keep their open readers)."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        flight.spool.discard()

    def _open_cache_upload(self, name: RepositoryName) -> _CacheUpload:
        """A new upload in ``name``'s project for the blob, ready to be written."""
        target = self._repositories.push_target(name, False)
        upload = self._uploads.start(target)
        view: Spool | None = None
        try:
            # NOTE: the view before the writer, so a failure leaves no writer open
            file = self._uploads.local_file(target, upload.id)
            view = None if file is None else self._spools.over(file)
            chunk = self._uploads.open_chunk(target, upload.id, 0)
        except BaseException:
            if view is not None:
                view.discard()
            self._uploads.cancel(target, upload.id)
            raise
        return _CacheUpload(target, upload, chunk, view)

    def _drop_cache_upload(self, cache: _CacheUpload) -> None:
        """Remove the cache's upload; readers already opened on its view keep theirs."""
        if cache.view is not None:
            cache.view.discard()
        self._uploads.abort_chunk(cache.chunk)
        self._uploads.cancel(cache.target, cache.upload.id)

    async def _drop_unused(self, opening: asyncio.Task[_CacheUpload]) -> None:
        """Remove an upload opened for a download that never wrote to it."""
        try:
            cache = await opening
        except Exception:  # noqa: BLE001 - nothing was opened; the download says why
            return
        await anyio.to_thread.run_sync(self._drop_cache_upload, cache)

    async def _cache_blob(
        self,
        flight: BlobFlight,
        digest: Digest,
        size: int,
        chunks: AsyncIterator[bytes],
        cache: _CacheUpload,
        verified: Callable[[], None],
    ) -> None:
        """Write the download to the cache upload; finish it once verified.

        The flight's scratch spool is written too unless the flight reads the upload's
        own file (:meth:`BlobFlight.adopt`).
        """
        uploads, chunk = self._uploads, cache.chunk
        hasher = chunk.hasher
        written = 0
        try:

            def both(data: bytes) -> None:
                flight.spool.write(data)
                chunk.write(data)

            write = chunk.write if flight.spool is cache.view else both
            async for data in chunks:
                await anyio.to_thread.run_sync(write, data)
                # NOTE: the newest chunk is held back until the whole blob is verified.
                await flight.release(written)
                written += len(data)
            _verify(digest, size, written, hasher)
            verified()
            # NOTE: verified, the last chunk goes to the pulls at once; making the cache
            # copy durable (its fsync) is the cache's business, not theirs
            await flight.release(size)
            committed = await anyio.to_thread.run_sync(uploads.commit_chunk, chunk)
        except BaseException as exc:
            # NOTE: the pulls reading the flight stop now, not once the upload is dropped
            await flight.fail(_failure(exc))
            await anyio.to_thread.run_sync(self._drop_cache_upload, cache)
            raise
        await anyio.to_thread.run_sync(uploads.finish, cache.target, committed, digest)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """Cancel this process's downloads and fills (shutdown): nothing half-done is kept."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
        for key, flight in list(self._flights.items()):
            self._land(key, flight)

    async def drain(self) -> None:
        """Wait for this process's downloads and fills (shutdown and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _failure(exc: BaseException) -> str:
    """Why a download failed, as its followers are told."""
    if isinstance(exc, (UpstreamError, RegistryError, OSError)):
        return str(exc)
    return f"download interrupted: {exc!r}"


async def _read_async(store: BlobStore, tenant: str, digest: Digest) -> AsyncIterator[bytes]:
    pieces = store.read_blob(tenant, digest)
    while True:
        piece = await anyio.to_thread.run_sync(next, pieces, None)
        if piece is None:
            return
        yield piece


def _bounded(size: int, limit: int, digest: Digest) -> int:
    if size > limit:
        raise UpstreamInvalidError(f"blob {digest} is larger than the size limit")
    return size


def _verify(digest: Digest, size: int, written: int, hasher: Hasher | None) -> None:
    """Refuse a download of the wrong size or digest (it is then discarded)."""
    if written != size:
        raise UpstreamInvalidError(f"blob {digest}: got {written} of {size} bytes")
    if hasher is not None and digest.algorithm == "sha256":
        actual = f"sha256:{hasher.hexdigest()}"
        if actual != str(digest):
            raise UpstreamInvalidError(
                f"blob {digest}: upstream sent content of digest {actual}; discarded"
            )


def _unstored(fetched: UpstreamManifest) -> ManifestRecord:
    """A fetched manifest served before the cache holds it (no row yet: no pull time)."""
    return ManifestRecord(
        id=0,
        repository_id=0,
        digest=fetched.digest,
        media_type=fetched.media_type,
        artifact_type=None,
        subject_digest=None,
        annotations=None,
        size=len(fetched.payload),
        payload=fetched.payload,
        pulled_at=datetime.now(UTC),
    )


def _unavailable(endpoint: str, exc: Exception) -> RegistryError:
    return RegistryError(OCIErrorCode.UNAVAILABLE, f"upstream {endpoint!r}: {exc}")


def _blob_unknown(digest: Digest, reason: str) -> RegistryError:
    return RegistryError(OCIErrorCode.BLOB_UNKNOWN, reason).with_detail({"digest": str(digest)})
