"""``WWW-Authenticate`` challenges (RFC 7235) and the realm pinning rule of upstream auth.

A registry answers an anonymous request with ``401`` and one or more challenges, e.g.
``Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"``.
Values may be quoted with backslash escapes and contain commas (``pull,push``), so the
header is tokenized, never split on commas.

Realm pinning: credentials go to a token realm only when the realm's host is the
upstream's own host or one the administrator listed for it (Docker Hub's
``auth.docker.io`` is listed by default for ``registry-1.docker.io``). The scheme must be
``https`` unless the upstream itself is plain ``http``, and a realm with user information
is refused. A refused realm gets no request at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme (lower case) and parameters (names lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self, chars: str = " \t") -> None:
        while self.at < len(self.text) and self.text[self.at] in chars:
            self.at += 1

    def token(self) -> str:
        start = self.at
        while self.at < len(self.text) and self.text[self.at] not in ' \t,="':
            self.at += 1
        return self.text[start : self.at]

    def quoted(self) -> str:
        self.at += 1  # opening quote
        out: list[str] = []
        while self.at < len(self.text):
            char = self.text[self.at]
            self.at += 1
            if char == "\\" and self.at < len(self.text):
                out.append(self.text[self.at])
                self.at += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given ``WWW-Authenticate`` header values, in order."""
    found: list[Challenge] = []
    for header in headers:
        reader = _Reader(header)
        current: Challenge | None = None
        while reader.peek():
            reader.skip(" \t,")
            name = reader.token()
            if not name:
                if reader.peek():
                    reader.at += 1  # stray character: skip it
                continue
            reader.skip()
            if reader.peek() == "=":
                reader.at += 1
                reader.skip()
                value = reader.quoted() if reader.peek() == '"' else reader.token()
                if current is not None:
                    current.params[name.lower()] = value
                continue
            current = Challenge(name.lower())
            found.append(current)
    return found


def realm_refusal(realm: str, upstream_url: str, extra_hosts: Iterable[str] = ()) -> str | None:
    """Why credentials must not go to ``realm`` for this upstream (``None``: they may)."""
    try:
        parts = urlsplit(realm)
        upstream = urlsplit(upstream_url)
        realm_host = (parts.hostname or "").lower()
    except ValueError:
        return f"token realm {realm!r} is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return f"token realm {realm!r} is not an http(s) URL"
    if parts.scheme == "http" and upstream.scheme != "http":
        return f"token realm {realm!r} is plain http while the upstream uses https"
    if parts.username is not None or parts.password is not None:
        return "token realm carries user information"
    allowed = {(upstream.hostname or "").lower(), *(h.lower() for h in extra_hosts)}
    if realm_host not in allowed:
        return (
            f"token realm host {realm_host!r} is not the upstream's host "
            f"{(upstream.hostname or '')!r} (realm pinning); no credentials were sent"
        )
    return None
