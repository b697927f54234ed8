"""The one way every list of the management API pages: keyset, ``Link`` header, ``next``.

Contract of every list endpoint:

- ``limit`` (query): page size, 1 to ``settings.limits.page_max`` (default: 100, or
  ``page_max`` when smaller). Anything else answers ``400`` with a problem detail whose
  ``errors`` name ``limit``.
- ``last`` (query): the cursor, exactly as a previous page's ``next`` wrote it. The page
  holds the items that come after it in the list's fixed order (keyset: items added or
  removed meanwhile never shift the others, none is served twice). A cursor that is not
  one answers ``400`` naming ``last``.
- The body is ``{"items": [...], "next": <cursor or null>}``; when a next page exists the
  response also carries ``Link: </path?...&last=<cursor>>; rel="next"`` (RFC 8288), the
  request's other query parameters kept.

Adopting it in a new list endpoint (the page parameters are registered app-wide by
``api.dependencies``, so ``limit`` and ``last`` show in the OpenAPI document)::

    class ThingPage(Page[ThingOut]):
        pass

    @get("/things")
    async def list_things(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        page: NamedDependency[PageParams],
    ) -> Response[ThingPage]:
        window = await page.fetch(
            lambda after, count: service.things(caller, after, count),  # blocking is fine
            key=lambda thing: thing.name,
            cursor=NAMES,
        )
        return window.respond(request, ThingPage, [ThingOut.of(t) for t in window.items])

``fetch(after, count)`` runs in a worker thread and returns at most ``count`` items after
``after`` (``None``: from the start) in the list's order; a store that returns a whole
small list cuts it with ``core.paging.window``. Cursors: :data:`NAMES` (string keys),
:data:`IDS` (integer ids), :data:`NEWEST_FIRST` (runs, by creation time then id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
from litestar import Request, Response
from litestar.exceptions import ValidationException
from pydantic import BaseModel

#: Default page size (``page_max`` when that is smaller).
DEFAULT_LIMIT: Final = 100
#: Longest cursor accepted (a repository name with its project is at most 255).
CURSOR_MAX: Final = 512
_SEPARATOR: Final = "~"

_ItemT = TypeVar("_ItemT")
_OutT = TypeVar("_OutT")
_KeyT = TypeVar("_KeyT")
_PageT = TypeVar("_PageT", bound="Page[Any]")


class Page(BaseModel, Generic[_OutT]):
    """One page of a list: its items and the cursor of the next page (``null``: the end)."""

    items: list[_OutT]
    next: str | None = None


def bad_parameter(name: str, message: str) -> ValidationException:
    """A ``400`` problem detail whose ``errors`` name the query parameter ``name``."""
    return ValidationException(
        detail=f"{name}: {message}", extra=[{"key": name, "source": "query", "message": message}]
    )


@dataclass(frozen=True, slots=True)
class Cursor(Generic[_KeyT]):
    """How a list's key is written in ``next`` and read back from ``last``.

    ``load`` raises ``ValueError`` for text that no ``dump`` could have written.
    """

    load: Callable[[str], _KeyT]
    dump: Callable[[_KeyT], str]


def _name(text: str) -> str:
    if not text:
        raise ValueError(text)
    return text


def _id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:  # noqa: PLR2004
        raise ValueError(text)
    return int(text)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _load_run(text: str) -> tuple[datetime, str]:
    moment, sep, run_id = text.partition(_SEPARATOR)
    if not sep or not run_id:
        raise ValueError(text)
    return _utc(datetime.fromisoformat(moment)), run_id


def _dump_run(key: tuple[datetime, str]) -> str:
    return f"{key[0].isoformat()}{_SEPARATOR}{key[1]}"


#: Names (projects, repositories, tags, users): the cursor is the last name itself.
NAMES: Final[Cursor[str]] = Cursor(_name, str)
#: Integer ids (members, robots, tokens, trusted issuers, audit events).
IDS: Final[Cursor[int]] = Cursor(_id, str)
#: Runs, newest first: ``<created_at ISO 8601>~<run id>``.
NEWEST_FIRST: Final[Cursor[tuple[datetime, str]]] = Cursor(_load_run, _dump_run)


@dataclass(frozen=True, slots=True)
class Window(Generic[_ItemT]):
    """The items of one page and the cursor of the next (``None`` at the end)."""

    items: list[_ItemT]
    next: str | None

    def link(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        """The ``Link`` header to the next page (none at the end)."""
        if self.next is None:
            return {}
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _CURSOR_NAMES]
        query = urlencode([*kept, ("last", self.next)])
        return {"Link": f'<{request.url.path}?{query}>; rel="next"'}

    def respond(
        self, request: Request[Any, Any, Any], page_type: type[_PageT], items: list[Any]
    ) -> Response[_PageT]:
        """The page as ``page_type`` (a :class:`Page` subclass), with its ``Link`` header."""
        return Response(content=page_type(items=items, next=self.next), headers=self.link(request))


@dataclass(frozen=True, slots=True)
class PageParams:
    """The validated ``limit`` and ``last`` of a list request (see the module docstring)."""

    limit: int
    last: str | None
    #: The query parameter the cursor came from (named in a ``400``).
    cursor_name: str = "last"

    @classmethod
    def of(cls, limit: int | None, last: str | None, page_max: int) -> PageParams:
        """Check the raw query values; ``400`` naming the parameter when out of bounds."""
        if limit is None:
            limit = min(DEFAULT_LIMIT, page_max)
        elif not 1 <= limit <= page_max:
            raise bad_parameter("limit", f"must be between 1 and {page_max}")
        if last is not None and len(last) > CURSOR_MAX:
            raise bad_parameter("last", f"a cursor is at most {CURSOR_MAX} characters")
        return cls(limit, last)

    def after(self, cursor: Cursor[_KeyT]) -> _KeyT | None:
        """The key the page starts after (``None``: the first page)."""
        if self.last is None:
            return None
        try:
            return cursor.load(self.last)
        except ValueError:
            raise bad_parameter(
                self.cursor_name, "not a cursor of this list (use a page's next)"
            ) from None

    async def fetch(
        self,
        fetch: Callable[[_KeyT | None, int], Sequence[_ItemT]],
        *,
        key: Callable[[_ItemT], _KeyT],
        cursor: Cursor[_KeyT],
    ) -> Window[_ItemT]:
        """One page: ``fetch(after, limit + 1)`` in a worker thread, cut to ``limit``."""
        after = self.after(cursor)
        found = await anyio.to_thread.run_sync(fetch, after, self.limit + 1)
        items = list(found[: self.limit])
        more = len(found) > self.limit and bool(items)
        return Window(items, cursor.dump(key(items[-1])) if more else None)


#: Query parameters that carry a cursor (``after`` is the audit log's older spelling).
_CURSOR_NAMES: Final = frozenset({"last", "after"})
