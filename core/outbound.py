"""Which outbound destinations Moorage may contact (webhooks, upstream registries, preheat).

The rules, applied to every URL a user or operator configures and again to every address
it resolves to at connect time:

- scheme ``https``, or ``http`` only when the policy allows it; no user-info in the URL;
- every address the host resolves to must be *public*: not loopback, private, link-local
  (cloud metadata ``169.254.169.254``), shared (100.64/10), reserved, unspecified or
  multicast, after unwrapping IPv4-mapped and NAT64 (``64:ff9b::/96``) IPv6 forms;
- unless it lies in one of the policy's allow-listed networks.

Host spellings that resolvers accept but people do not read as addresses (``2130706433``,
``0x7f.1``, ``017700000001``, ``127.1``) are parsed the way ``inet_aton`` parses them, so
they are judged as the address they are. Callers connect to the address that was checked
(:func:`checked_addresses`), never resolving the name a second time (no DNS rebinding).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A resolver: host and port to every address it names (``getaddrinfo`` behind a port).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_PARTS = 4
_OCTET = 256


class OutboundRefusedError(ValueError):
    """A destination the outbound policy does not allow; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """What outbound calls may reach.

    Attributes:
        allow: Networks that may be contacted although they are not public (an internal
            receiver, a loopback test server). Empty by default: only public addresses.
        allow_http: Whether plain ``http`` URLs are accepted.
    """

    allow: tuple[IPNetwork, ...] = field(default_factory=tuple)
    allow_http: bool = False

    @classmethod
    def of(cls, allow: Iterable[str] = (), *, allow_http: bool = False) -> OutboundPolicy:
        """A policy from CIDR strings (a bare address is a one-address network)."""
        networks: list[IPNetwork] = []
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"outbound allow-list entry {entry!r} is not a network") from exc
        return cls(allow=tuple(networks), allow_http=allow_http)

    def permits(self, address: IPAddress) -> bool:
        """Whether ``address`` may be contacted."""
        candidates = _unwrapped(address)
        if any(any(c in network for network in self.allow) for c in candidates):
            return True
        return all(_is_public(c) for c in candidates)


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL: its parts and the port to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    parts: SplitResult


def parse_destination(url: str, policy: OutboundPolicy) -> Destination:
    """Check a URL's shape against ``policy`` (no resolution); refuse with the reason.

    A host written as an address literal (in any spelling) is checked here already.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefusedError(f"url {url!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise OutboundRefusedError(f"url scheme {parts.scheme!r} is not allowed; use https")
    if scheme == "http" and not policy.allow_http:
        raise OutboundRefusedError("url scheme 'http' is not allowed here; use https")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefusedError("url must not carry user information; configure credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundRefusedError(f"url {url!r} names no host")
    literal = parse_address(host)
    if literal is not None and not policy.permits(literal):
        raise OutboundRefusedError(f"address {literal} of url host {host!r} is {_kind(literal)}")
    return Destination(
        url=url,
        scheme=scheme,
        host=host,
        port=port if port is not None else (443 if scheme == "https" else 80),
        parts=parts,
    )


async def checked_addresses(
    destination: Destination, policy: OutboundPolicy, resolve: Resolver
) -> list[IPAddress]:
    """Resolve the destination once and return its addresses if *all* are allowed.

    Refuses when the name resolves to nothing or when any address is not allowed (a name
    with one public and one private address is refused: a client might use either).
    The caller connects to one of these addresses, never to the name.
    """
    literal = parse_address(destination.host)
    if literal is not None:
        found: list[IPAddress] = [literal]
    else:
        try:
            raw = await resolve(destination.host, destination.port)
        except OSError as exc:
            raise OutboundRefusedError(
                f"host {destination.host!r} does not resolve: {exc}"
            ) from exc
        found = []
        for text in raw:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if address not in found:
                found.append(address)
    if not found:
        raise OutboundRefusedError(f"host {destination.host!r} resolves to no address")
    for address in found:
        if not policy.permits(address):
            raise OutboundRefusedError(
                f"host {destination.host!r} resolves to {address}, which is {_kind(address)}"
            )
    return found


def parse_address(host: str) -> IPAddress | None:
    """The address a host string denotes, or ``None`` for a name.

    Accepts IPv6 literals (with or without brackets) and every IPv4 spelling
    ``inet_aton`` accepts: one to four parts, each decimal, octal (leading ``0``) or
    hexadecimal (``0x``).
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    return _inet_aton(text)


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    pieces = text.split(".")
    if not 1 <= len(pieces) <= _IPV4_PARTS:
        return None
    values: list[int] = []
    for piece in pieces:
        value = _number(piece)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(v >= _OCTET for v in head) or last >= _OCTET ** (_IPV4_PARTS + 1 - len(values)):
        return None
    number = 0
    for value in head:
        number = number * _OCTET + value
    number = number * _OCTET ** (_IPV4_PARTS - len(head)) + last
    return ipaddress.IPv4Address(number)


def _number(piece: str) -> int | None:
    lowered = piece.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:] or "0", 16)
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        if lowered.isdigit():
            return int(lowered, 10)
    except ValueError:
        return None
    return None


def _unwrapped(address: IPAddress) -> list[IPAddress]:
    result: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            result.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            result.append(address.sixtofour)
        if address in _NAT64:
            result.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return result


def _is_public(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast and not address.is_unspecified


def _kind(address: IPAddress) -> str:
    for candidate in _unwrapped(address):
        if candidate.is_loopback:
            return "a loopback address"
        if candidate.is_link_local:
            return "a link-local address (cloud metadata lives there)"
        if candidate.is_unspecified:
            return "the unspecified address"
        if candidate.is_multicast:
            return "a multicast address"
        if candidate.is_private:
            return "a private address"
    return "not a public address"
