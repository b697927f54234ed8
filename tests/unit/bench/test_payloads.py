"""Virtual blobs and the OCI layout builder of the benchmark (in memory and tmp_path only)."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import tarfile

import pytest

from bench.images import build_layout
from bench.payloads import PREFIX_LEN, PayloadFactory


@pytest.mark.parametrize(
    ("size", "piece"), [(PREFIX_LEN, 7), (1000, 64), (5000, 333), (4096, 4096)]
)
def test_pieces_cover_the_blob_and_match_its_digest(size: int, piece: int) -> None:
    factory = PayloadFactory(1024)
    blob = factory.blob(size, "t")
    pieces = list(blob.iter_pieces(piece))
    assert all(0 < len(view) <= piece for view in pieces)
    data = b"".join(pieces)
    assert len(data) == size
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data[PREFIX_LEN:] == (factory.base * (size // 1024 + 1))[: size - PREFIX_LEN]


def test_ranges_concatenate_to_the_whole_blob() -> None:
    blob = PayloadFactory(1000).blob(3333, "r")
    whole = blob.to_bytes()
    cuts = [0, 10, 64, 65, 1064, 2000, 3333]
    parts = [b"".join(blob.iter_range(a, b, 100)) for a, b in itertools.pairwise(cuts)]
    assert b"".join(parts) == whole


def test_blobs_have_unique_digests() -> None:
    factory = PayloadFactory(256)
    digests = {factory.blob(1024, "same").digest for _ in range(20)}
    assert len(digests) == 20


def test_blob_without_digest_skips_hashing() -> None:
    assert PayloadFactory(256).blob(1024, digest=False).digest == ""


def test_layout_is_a_valid_oci_image(tmp_path) -> None:
    factory = PayloadFactory(70_000)
    layout = build_layout(tmp_path / "img", factory, [150_000, 100], tag="t")
    assert layout.reference == f"oci:{tmp_path / 'img'}:t"
    index = json.loads((tmp_path / "img" / "index.json").read_text())
    entry = index["manifests"][0]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "t"
    blobs = tmp_path / "img" / "blobs" / "sha256"
    for path in blobs.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    manifest = json.loads((blobs / entry["digest"].removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    assert len(manifest["layers"]) == 2
    for layer, diff_id, size in zip(
        manifest["layers"], config["rootfs"]["diff_ids"], [150_000, 100], strict=True
    ):
        path = blobs / layer["digest"].removeprefix("sha256:")
        assert path.stat().st_size == layer["size"]
        raw = gzip.decompress(path.read_bytes())
        assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        with tarfile.open(path) as tar:
            (member,) = tar.getmembers()
            assert member.size == size
    assert (
        layout.size
        == sum(layer["size"] for layer in manifest["layers"])
        + len((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
        + entry["size"]
    )
