"""The one parser of ``Authorization`` headers (``api.credentials``)."""

from __future__ import annotations

import base64

import pytest

from api.credentials import Basic, Bearer, authorization_of, parse, scheme_of


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_and_bearer_are_parsed() -> None:
    assert parse(_basic("robot$p+ci:se:cret")) == Basic("robot$p+ci", "se:cret")
    assert parse("basic " + base64.b64encode(b"u:").decode()) == Basic("u", "")
    assert parse("Bearer abc.def.ghi ") == Bearer("abc.def.ghi")
    assert parse("BEARER t") == Bearer("t")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer   ",
        "Basic",
        "Basic not*base64",
        _basic("no-colon"),
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Digest abc",
        "Token x",
    ],
)
def test_anything_else_is_no_credential(header: str | None) -> None:
    assert parse(header) is None


def test_raw_asgi_headers() -> None:
    headers = [(b"host", b"x"), (b"Authorization", b"Bearer t")]
    assert authorization_of(headers) == "Bearer t"
    assert authorization_of([(b"host", b"x")]) is None
    assert scheme_of("Basic abc") == "basic"
    assert scheme_of(None) == ""
