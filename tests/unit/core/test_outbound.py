"""The outbound policy refuses every spelling of a non-public destination."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from core.outbound import (
    OutboundPolicy,
    OutboundRefusedError,
    checked_addresses,
    parse_address,
    parse_destination,
)

PUBLIC = OutboundPolicy.of()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "017700000001",
        "0177.0.0.1",
        "127.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::a00:1]",
        "0.0.0.0",  # noqa: S104 (a destination, not a bind address)
        "169.254.169.254",
        "10.1.2.3",
        "192.168.0.1",
        "100.64.0.1",
        "[fe80::1]",
        "224.0.0.1",
    ],
)
def test_non_public_literals_are_refused_at_parse(host: str) -> None:
    with pytest.raises(OutboundRefusedError):
        parse_destination(f"https://{host}/hook", PUBLIC)


def test_alternative_spellings_denote_loopback() -> None:
    for spelling in ("2130706433", "0x7f.1", "017700000001", "127.1", "0x7f000001"):
        assert str(parse_address(spelling)) == "127.0.0.1"
    assert parse_address("example.com") is None
    assert parse_address("1.2.3.4.5") is None


def test_shape_rules() -> None:
    with pytest.raises(OutboundRefusedError, match="http"):
        parse_destination("http://example.com/", PUBLIC)
    with pytest.raises(OutboundRefusedError, match="user information"):
        parse_destination("https://u:p@example.com/", PUBLIC)
    with pytest.raises(OutboundRefusedError, match="scheme"):
        parse_destination("file:///etc/passwd", PUBLIC)
    destination = parse_destination("https://example.com/x", PUBLIC)
    assert (destination.host, destination.port) == ("example.com", 443)


def test_allow_list_admits_loopback() -> None:
    policy = OutboundPolicy.of(["127.0.0.0/8"], allow_http=True)
    destination = parse_destination("http://127.0.0.1:8080/hook", policy)
    assert destination.port == 8080
    with pytest.raises(OutboundRefusedError):
        parse_destination("http://[::1]:8080/hook", policy)


def _resolver(answers: Sequence[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> Sequence[str]:
        del host, port
        return answers

    return resolve


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    destination = parse_destination("https://hooks.example/", PUBLIC)
    with pytest.raises(OutboundRefusedError, match=r"10\.0\.0\.5"):
        asyncio.run(
            checked_addresses(destination, PUBLIC, _resolver(["93.184.216.34", "10.0.0.5"]))
        )
    found = asyncio.run(checked_addresses(destination, PUBLIC, _resolver(["93.184.216.34"])))
    assert [str(a) for a in found] == ["93.184.216.34"]
