"""Drive Keycloak's login pages with HTTP the way a browser would (form posts)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urljoin, urlparse

import httpx

_FORM = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', re.DOTALL)
MAX_HOPS = 10


class _PlainHttpCookies(httpx.HTTPTransport):
    """Keycloak marks its cookies ``Secure``; browsers send those to http://127.0.0.1
    (a secure context) but httpx does not, so the flag is dropped on the way in."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "set-cookie" not in response.headers:
            return response
        headers = [
            (name, _insecure(value) if name.lower() == "set-cookie" else value)
            for name, value in response.headers.multi_items()
        ]
        response.headers = httpx.Headers(headers)
        return response


def _insecure(value: str) -> str:
    return ";".join(p for p in value.split(";") if p.strip().lower() != "secure")


def browser() -> httpx.Client:
    """An HTTP client that keeps Keycloak's session cookies like a browser on loopback."""
    return httpx.Client(transport=_PlainHttpCookies(), timeout=30.0)


def login_form(client: httpx.Client, url: str) -> httpx.Response:
    """Follow redirects from ``url`` to Keycloak's login page."""
    response = client.get(url, follow_redirects=True)
    assert response.status_code == 200, response.text[:500]
    return response


def submit_login(
    client: httpx.Client, page: httpx.Response, username: str, password: str
) -> httpx.Response:
    """Post the credentials to the page's login form (not following redirects)."""
    match = _FORM.search(page.text)
    assert match, page.text[:2000]
    action = html.unescape(match.group(1))
    return client.post(
        action, data={"username": username, "password": password, "credentialId": ""}
    )


def code_from_redirect(response: httpx.Response) -> tuple[str, str]:
    """The ``code`` and ``state`` of the redirect back to the client."""
    assert response.status_code in (302, 303), response.text[:2000]
    query = parse_qs(urlparse(response.headers["location"]).query)
    return query["code"][0], query["state"][0]


def approve_device(
    client: httpx.Client, verification_url: str, username: str, password: str
) -> str:
    """Log in on the device verification page; returns the final page's text."""
    page = login_form(client, verification_url)
    response = submit_login(client, page, username, password)
    for _ in range(MAX_HOPS):
        if response.status_code not in (302, 303):
            break
        response = client.get(urljoin(str(response.url), response.headers["location"]))
    consent = re.search(
        r'<form[^>]*action="([^"]+)"[^>]*>.*?name="accept"', response.text, re.DOTALL
    )
    if consent:
        action = urljoin(str(response.url), html.unescape(consent.group(1)))
        response = client.post(action, data={"accept": "Yes"}, follow_redirects=True)
    return response.text
