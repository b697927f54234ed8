"""Settings of the pull-through proxy cache (``core.proxy``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProxySettings(BaseModel):
    """Defaults of proxy projects; a project's binding may override the first two.

    ``freshness_seconds``: how long a tag's cached manifest is served without asking the
    upstream (then one ``HEAD`` revalidates it). ``serve_stale``: serve the cached copy
    when the upstream is down or refuses us. ``refresh_seconds``: how soon a binding made
    on another API process is seen by this one. ``fill_concurrency``: blobs one pulled
    manifest's cache fill downloads at once, in the manifest's order (a blob a client asks
    for is downloaded at once whatever the fill is doing, so this bounds only what is
    fetched ahead of clients; one keeps a client that pulls blob after blob from sharing
    its bandwidth with the fill). ``timeout_seconds``: connect and read timeout of
    upstream calls.
    """

    freshness_seconds: int = Field(default=60, ge=0)
    serve_stale: bool = True
    refresh_seconds: float = Field(default=5.0, gt=0)
    fill_concurrency: int = Field(default=1, ge=1, le=32)
    timeout_seconds: float = Field(default=30.0, gt=0)
