"""Wiring of the zero-copy download listener into one API worker process.

On startup each worker binds its own listener (``api.download_server``) on its own event
loop and publishes a :class:`~api.blob_downloads.DownloadRedirects` for the blob
controller; on shutdown it closes it. Why per worker and not one process: the listener
then scales with the workers ``moorage api`` already runs, lives and dies with the
process that issues its URLs, needs no supervision of its own, and runs the same way
under ``moorage dev`` (one process) and in tests. The workers of ``moorage api`` share one
port through ``SO_REUSEPORT``: the configured one, or one ``moorage api`` reserves for them
(``cli.download_port``); a process on its own with ``listen_port = 0`` gets a free port.

Only the filesystem backend has files to send; with S3 the store's presigned redirects
(``s3.redirect_pulls``) are the equivalent.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from adapters.master_key import master_keys
from api.blob_downloads import EXTRA, DownloadRedirects
from api.context import Registry
from api.download_server import ConnectionLimits, DownloadServer
from core.download_links import LinkSigner, link_key

_SERVER: Final = "download_server"
_log = logging.getLogger("moorage.downloads")


async def start_downloads(registry: Registry) -> None:
    """Start this worker's download listener, if enabled.

    Blobs on the filesystem are sent from their files; on S3 they are read from the
    object store on the listener's threads (``api.download_server``).
    """
    settings = registry.settings
    config = settings.downloads
    if not config.enabled:
        return
    signer = LinkSigner([link_key(key) for key in master_keys(settings)])
    server = DownloadServer(
        host=config.listen_host,
        port=config.listen_port,
        reuse_port=config.listen_port != 0,
        signer=signer,
        resolve=registry.store.blob_file,
        reads=registry.store,
        clock=time.time,
        limits=ConnectionLimits(
            max_connections=config.max_connections,
            send_threads=config.send_threads,
            header_timeout=settings.server.header_timeout_seconds,
            keep_alive_timeout=settings.server.keep_alive_timeout_seconds,
            idle_timeout=config.idle_timeout_seconds,
            backlog=settings.server.backlog,
            send_mode=config.send_mode,
        ),
    )
    port = await server.start()
    registry.extras[_SERVER] = server
    registry.extras[EXTRA] = DownloadRedirects(config, signer, port, time.time)
    _log.info("blob download listener on %s port %d", config.listen_host, port)


async def close_downloads(registry: Registry) -> None:
    """Stop this worker's download listener (no-op if none runs)."""
    registry.extras.pop(EXTRA, None)
    server = registry.extras.pop(_SERVER, None)
    if isinstance(server, DownloadServer):
        await server.close()
