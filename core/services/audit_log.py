"""The audit log service.

The audit log service: requests enqueue events, a writer thread chains and stores
them in batches (one transaction per batch), optionally forwarding each to syslog.

Per-request cost is one lock-free append to an in-process queue. Events reach the
database within ``flush_interval_seconds``; :meth:`AuditLog.flush` forces it (queries,
verification and purges call it first) and :meth:`AuditLog.close` runs it at shutdown.
Pull events are sampled by ``pull_sample_rate``; denied requests are always kept.

Durability window: an event exists only in the process's memory from its response until
the next flush (about ``flush_interval_seconds``, 0.2 s by default). A clean shutdown
writes everything queued; a process killed or crashing loses at most the events of that
window. A batch whose write fails stays queued, in order, and is retried. The chain is
never broken by batching: batches are appended in queue order, one transaction each,
under the head row's lock that serialises appends from all processes.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import random
import threading
from collections import deque
from datetime import datetime
from typing import Protocol

from core.audit import PULL_ACTIONS, AuditEvent, AuditQuery, StoredAuditEvent, VerifyReport
from core.identity_settings import AuditSettings

_log = logging.getLogger("moorage.audit")


class AuditStore(Protocol):
    def append(self, events: list[AuditEvent]) -> list[StoredAuditEvent]: ...
    def query(self, query: AuditQuery) -> list[StoredAuditEvent]: ...
    def verify(self) -> VerifyReport: ...
    def purge(self, before: datetime) -> int: ...


def _syslog(address: str | None) -> logging.Logger | None:
    if not address:
        return None
    host, _, port = address.rpartition(":")
    forward = logging.getLogger("moorage.audit.syslog")
    forward.propagate = False
    forward.setLevel(logging.INFO)
    handler = logging.handlers.SysLogHandler(address=(host, int(port)))
    handler.setFormatter(logging.Formatter("moorage-audit: %(message)s"))
    forward.addHandler(handler)
    return forward


class AuditLog:
    def __init__(self, store: AuditStore, settings: AuditSettings) -> None:
        self._store, self._settings = store, settings
        #: Appended by requests, drained by the writer (``deque`` appends and pops are
        #: atomic, so a request takes no lock).
        self._queue: deque[AuditEvent] = deque()
        self._writer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._forward = _syslog(settings.syslog_address)

    def record(self, event: AuditEvent) -> None:
        """Enqueue an event (sampled, if it is a successful pull)."""
        if not self._settings.enabled:
            return
        if event.action in PULL_ACTIONS and event.result == "success":
            rate = self._settings.pull_sample_rate
            if rate <= 0 or (rate < 1 and random.random() >= rate):  # noqa: S311 - sampling
                return
        self._queue.append(event)
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._ensure_writer()

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._settings.flush_interval_seconds)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the batch stays queued; retried next round
                _log.exception("writing audit events failed")

    def flush(self) -> None:
        """Write every queued event now."""
        with self._flush_lock:
            while True:
                batch: list[AuditEvent] = []
                while len(batch) < self._settings.batch_size:
                    try:
                        batch.append(self._queue.popleft())
                    except IndexError:
                        break
                if not batch:
                    return
                try:
                    stored = self._store.append(batch)
                except BaseException:
                    # NOTE: back to the front, in order, so the chain keeps request order.
                    self._queue.extendleft(reversed(batch))
                    raise
                self._send(stored)

    def _send(self, stored: list[StoredAuditEvent]) -> None:
        if self._forward is None:
            return
        for event in stored:
            try:
                self._forward.info(json.dumps(event.as_dict(), sort_keys=True))
            except OSError:  # pragma: no cover - syslog unreachable
                _log.warning("audit syslog forwarding failed")

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def query(self, query: AuditQuery) -> list[StoredAuditEvent]:
        self.flush()
        return self._store.query(query)

    def verify(self) -> VerifyReport:
        self.flush()
        return self._store.verify()

    def purge(self, before: datetime) -> int:
        self.flush()
        return self._store.purge(before)
