"""Signed download links (``core.download_links``): what verifies and what is refused."""

from __future__ import annotations

import hashlib

import pytest

from core.digests import Digest
from core.download_links import DownloadLink, LinkError, LinkSigner, link_key
from core.download_settings import DownloadSettings

KEY = link_key(b"k" * 32)
OTHER_KEY = link_key(b"o" * 32)
DIGEST = Digest.parse("sha256:" + hashlib.sha256(b"blob").hexdigest())
OTHER_DIGEST = Digest.parse("sha256:" + hashlib.sha256(b"other").hexdigest())
LINK = DownloadLink(tenant="t1", digest=DIGEST, repository="lib/app", expires=1000)


def test_a_signed_link_verifies_before_its_expiry_only() -> None:
    signer = LinkSigner([KEY])
    target = signer.path_and_query(LINK)
    assert target.startswith(f"/blobs/{DIGEST}?")
    assert signer.verify(target, now=999.9) == LINK
    with pytest.raises(LinkError, match="expired"):
        signer.verify(target, now=1000)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (str(DIGEST), str(OTHER_DIGEST)),  # another blob
        ("tenant=t1", "tenant=t2"),  # another tenant
        ("repository=lib%2Fapp", "repository=lib%2Fother"),  # another repository
        ("expires=1000", "expires=9000"),  # a later expiry
    ],
)
def test_an_altered_link_is_refused(old: str, new: str) -> None:
    signer = LinkSigner([KEY])
    target = signer.path_and_query(LINK)
    assert old in target
    with pytest.raises(LinkError, match="signature"):
        signer.verify(target.replace(old, new), now=0)


def test_a_link_signed_with_another_key_is_refused() -> None:
    target = LinkSigner([OTHER_KEY]).path_and_query(LINK)
    with pytest.raises(LinkError, match="signature"):
        LinkSigner([KEY]).verify(target, now=0)


def test_links_of_a_rotated_out_key_verify_while_it_is_still_configured() -> None:
    old_target = LinkSigner([OTHER_KEY]).path_and_query(LINK)
    rotated = LinkSigner([KEY, OTHER_KEY])
    assert rotated.verify(old_target, now=0) == LINK
    assert LinkSigner([KEY]).verify(rotated.path_and_query(LINK), now=0) == LINK


@pytest.mark.parametrize(
    "target",
    [
        "/v2/lib/app/blobs/x",
        f"/blobs/{DIGEST}",
        f"/blobs/{DIGEST}?tenant=t1&repository=r&expires=soon&signature=AA",
        f"/blobs/{DIGEST}?tenant=t1&tenant=t2&repository=r&expires=1&signature=AA",
        "/blobs/sha256:abc?tenant=t1&repository=r&expires=1&signature=AA",
        f"/blobs/{DIGEST}?tenant=t1&repository=r&expires=1&signature=%%%",
    ],
)
def test_malformed_links_are_refused(target: str) -> None:
    with pytest.raises(LinkError):
        LinkSigner([KEY]).verify(target, now=0)


def test_the_link_key_is_not_the_master_key() -> None:
    assert link_key(b"k" * 32) != b"k" * 32
    assert len(KEY) == 32


def test_a_public_url_needs_a_fixed_port() -> None:
    with pytest.raises(ValueError, match="fixed"):
        DownloadSettings(public_url="https://downloads.example.com")
    with pytest.raises(ValueError, match="http"):
        DownloadSettings(public_url="downloads.example.com", listen_port=5001)
    assert DownloadSettings(public_url="https://d.example.com", listen_port=5001).enabled
