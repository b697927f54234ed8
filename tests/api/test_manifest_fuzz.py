"""Generated manifest pushes through the real API: never a 5xx, never stored when invalid.

Each case applies one mutation to a valid image manifest or index whose blobs and child
are stored, so its expected outcome is known: ``invalid`` mutations must get a 4xx and
leave nothing behind (HEAD by digest and by tag answer 404), ``valid`` ones must be
stored byte for byte, and ``unknown`` ones (random byte flips) must just not break the
server. The run is seeded: a failure names the seed, and ``MOORAGE_FUZZ_SEED`` replays it.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.api.oci import LAYER, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, OCIClient, digest_of

CASES = 300
ND_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"

Json = dict[str, Any]


@dataclass(frozen=True)
class Base:
    """The valid documents the mutations start from, and the content they name."""

    manifest: Json
    index: Json
    config: bytes


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes
    media_type: str
    expect: str  # "valid", "invalid" or "unknown"


Mutation = Callable[[random.Random, Base], Case]


def _dump(document: Any) -> bytes:
    return json.dumps(document).encode()


def _pick_descriptor(rng: random.Random, manifest: Json) -> tuple[Json, str]:
    choices = [(manifest["config"], "config")] + [
        (layer, f"layers[{i}]") for i, layer in enumerate(manifest["layers"])
    ]
    return rng.choice(choices)


def _bad_value(rng: random.Random, field: str, descriptor: Json) -> Any:
    size = descriptor["size"]
    return rng.choice(
        {
            "size": [
                0,
                size - 1,
                size + 1,
                -1,
                1.5,
                float(size),
                str(size),
                None,
                True,
                size + rng.randint(2, 10**9),
            ],
            "mediaType": [None, "", "tar", 5, "a/b/c", "/x", [], {}],
            "digest": [
                "",
                "sha256:abc",
                None,
                7,
                "md5:" + "a" * 32,
                descriptor["digest"].upper(),
                descriptor["digest"] + "0",
            ],
            "urls": ["https://x.example.com", [1], [""], ["no-scheme"], {}, None],
            "annotations": [[], "x", {"a": 1}, {"a": None}, None],
            "platform": ["x", {}, {"os": "linux"}, {"architecture": "amd64"}, 5, None],
            "artifactType": ["x", 5, None, ""],
            "data": [5, None, "!!", "e30", base64.b64encode(secrets.token_bytes(7)).decode()],
        }[field]
    )


def descriptor_field(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    descriptor, where = _pick_descriptor(rng, manifest)
    field = rng.choice(
        ["size", "mediaType", "digest", "urls", "annotations", "platform", "artifactType", "data"]
    )
    descriptor[field] = _bad_value(rng, field, descriptor)
    return Case(f"{where}.{field}={descriptor[field]!r}", _dump(manifest), OCI_MANIFEST, "invalid")


def descriptor_missing(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    descriptor, where = _pick_descriptor(rng, manifest)
    field = rng.choice(["size", "mediaType", "digest"])
    del descriptor[field]
    return Case(f"{where} without {field}", _dump(manifest), OCI_MANIFEST, "invalid")


def unknown_blob(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    descriptor, where = _pick_descriptor(rng, manifest)
    descriptor["digest"] = digest_of(rng.randbytes(16))
    return Case(f"{where} not stored", _dump(manifest), OCI_MANIFEST, "invalid")


def top_level(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    choices: list[tuple[str, list[Any]]] = [
        ("schemaVersion", [2.0, "2", 1, 3, None, True, [], {}]),
        ("mediaType", [None, 1, [], {}, OCI_INDEX]),
        ("config", [None, "x", 1, [], {}]),
        ("layers", [None, "x", 1, {}, [None], ["x"], [{}]]),
        ("annotations", [None, [], "x", {"a": 1}]),
        ("subject", [None, "x", {}, {"mediaType": OCI_MANIFEST}]),
        ("artifactType", [None, 1, "x"]),
        ("manifests", [[], None]),
    ]
    field, values = rng.choice(choices)
    manifest[field] = rng.choice(values)
    return Case(f"{field}={manifest[field]!r}", _dump(manifest), OCI_MANIFEST, "invalid")


def top_level_missing(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    field = rng.choice(["schemaVersion", "config", "layers"])
    del manifest[field]
    return Case(f"without {field}", _dump(manifest), OCI_MANIFEST, "invalid")


def index_child(rng: random.Random, base: Base) -> Case:
    index = copy.deepcopy(base.index)
    child = index["manifests"][0]
    choices: list[tuple[str, list[Any]]] = [
        ("size", [1, 0, child["size"] - 1, child["size"] + 1, 2.5, None]),
        (
            "platform",
            [
                "x",
                {},
                {"os": "linux"},
                {"architecture": 1, "os": "linux"},
                {"architecture": "arm", "os": "linux", "features": "x"},
            ],
        ),
        ("digest", [digest_of(rng.randbytes(8)), "sha256:1", None]),
        ("mediaType", [None, "x", 3]),
    ]
    field, values = rng.choice(choices)
    child[field] = rng.choice(values)
    return Case(f"manifests[0].{field}={child[field]!r}", _dump(index), OCI_INDEX, "invalid")


def index_top_level(rng: random.Random, base: Base) -> Case:
    index = copy.deepcopy(base.index)
    choices: list[tuple[str, list[Any]]] = [
        ("schemaVersion", [2.0, 1, None]),
        ("mediaType", [None, 5]),
        ("manifests", [None, {}, "x", [None]]),
        ("layers", [[]]),
        ("config", [{}]),
    ]
    field, values = rng.choice(choices)
    index[field] = rng.choice(values)
    return Case(f"index {field}={index[field]!r}", _dump(index), OCI_INDEX, "invalid")


def deep_nesting(rng: random.Random, base: Base) -> Case:
    depth = rng.randint(2_000, 20_000)
    body = _dump(base.manifest)[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    return Case(f"nested {depth} levels", body, OCI_MANIFEST, "invalid")


def truncated(rng: random.Random, base: Base) -> Case:
    body = _dump(rng.choice([base.manifest, base.index]))
    cut = rng.randint(0, len(body) - 1)
    return Case(f"truncated at {cut}", body[:cut], OCI_MANIFEST, "invalid")


def bad_data(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    good = base64.b64encode(base.config).decode()
    manifest["config"]["data"] = rng.choice(
        [
            good[:-1],
            good + "A",
            good.rstrip("=") + "*",
            base64.b64encode(base.config[:-1] + b"?").decode(),
            base64.b64encode(base.config + b" ").decode(),
            base64.urlsafe_b64encode(b"\xff" * len(base.config)).decode(),
        ]
    )
    return Case(
        f"config.data={manifest['config']['data']!r}", _dump(manifest), OCI_MANIFEST, "invalid"
    )


def valid_extras(rng: random.Random, base: Base) -> Case:
    manifest = copy.deepcopy(base.manifest)
    descriptor, where = _pick_descriptor(rng, manifest)
    change = rng.choice(
        [
            ("custom field", lambda: manifest.update({"x-custom": {"k": [1, 2.5, None]}})),
            ("annotations", lambda: manifest.update({"annotations": {"a": secrets.token_hex(4)}})),
            ("descriptor annotations", lambda: descriptor.update({"annotations": {"b": "c"}})),
            ("descriptor urls", lambda: descriptor.update({"urls": ["https://x.example.com/"]})),
            (
                "descriptor platform",
                lambda: descriptor.update(
                    {"platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
                ),
            ),
            (
                "config data",
                lambda: manifest["config"].update({"data": base64.b64encode(base.config).decode()}),
            ),
            ("no layers", lambda: manifest.update({"layers": []})),
            ("artifactType", lambda: manifest.update({"artifactType": "application/x-fuzz"})),
            (
                "non-distributable layer",
                lambda: manifest["layers"].append(
                    {
                        "mediaType": ND_LAYER,
                        "digest": digest_of(rng.randbytes(16)),
                        "size": 77,
                        "urls": ["https://layers.example.com/x"],
                    }
                ),
            ),
        ]
    )
    change[1]()
    # NOTE: a unique annotation keeps every valid case a new manifest.
    manifest.setdefault("annotations", {})["fuzz"] = secrets.token_hex(6)
    return Case(f"{change[0]} ({where})", _dump(manifest), OCI_MANIFEST, "valid")


def valid_index(rng: random.Random, base: Base) -> Case:
    index = copy.deepcopy(base.index)
    child = index["manifests"][0]
    child["platform"] = rng.choice(
        [
            {"architecture": "amd64", "os": "linux"},
            {"architecture": "arm", "os": "linux", "variant": "v7", "features": ["x"]},
            {"architecture": "amd64", "os": "windows", "os.version": "10.0", "os.features": []},
        ]
    )
    index["annotations"] = {"fuzz": secrets.token_hex(6)}
    return Case("index with platform", _dump(index), OCI_INDEX, "valid")


def byte_flip(rng: random.Random, base: Base) -> Case:
    body = bytearray(_dump(rng.choice([base.manifest, base.index])))
    # NOTE: distinct places, each given another value: the bytes always differ from the
    # base (a flip to the same value left the child manifest's own bytes, which a refusal
    # for the other media type then found stored under their digest)
    for place in rng.sample(range(len(body)), rng.randint(1, 3)):
        body[place] = (body[place] + rng.randrange(1, 256)) % 256
    return Case("byte flip", bytes(body), rng.choice([OCI_MANIFEST, OCI_INDEX]), "unknown")


MUTATIONS: list[Mutation] = [
    descriptor_field,
    descriptor_field,
    descriptor_field,
    descriptor_missing,
    unknown_blob,
    top_level,
    top_level,
    top_level_missing,
    index_child,
    index_child,
    index_top_level,
    deep_nesting,
    truncated,
    bad_data,
    valid_extras,
    valid_extras,
    valid_index,
    byte_flip,
    byte_flip,
]


def _seed() -> int:
    configured = os.environ.get("MOORAGE_FUZZ_SEED")
    return int(configured) if configured else secrets.randbits(32)


def _base(oci: OCIClient, repo: str) -> Base:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": secrets.token_hex(4)})
    config_bytes = config.encode()
    layers = [secrets.token_bytes(300), secrets.token_bytes(1)]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": oci.push_blob(repo, config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": LAYER, "digest": oci.push_blob(repo, layer), "size": len(layer)}
            for layer in layers
        ],
    }
    child = _dump(manifest)
    assert oci.put_manifest(repo, "child", child).status_code == 201
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest_of(child), "size": len(child)}],
    }
    return Base(manifest, index, config_bytes)


def _left_nothing(oci: OCIClient, repo: str, case: Case, tag: str) -> str | None:
    for reference in (digest_of(case.payload), tag):
        head = oci.request("HEAD", f"/v2/{repo}/manifests/{reference}", repo)
        if head.status_code != 404:
            return f"refused but HEAD {reference} answers {head.status_code}"
    return None


def _check(oci: OCIClient, repo: str, case: Case, tag: str) -> str | None:
    """What went wrong with ``case``, or ``None``."""
    response = oci.put_manifest(repo, tag, case.payload, case.media_type)
    status = response.status_code
    if status >= 500:
        return f"{status} {response.text[:300]}"
    if case.expect == "valid":
        if status != 201:
            return f"refused a valid manifest: {status} {response.text[:300]}"
        pulled = oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo)
        return None if pulled.content == case.payload else "stored bytes differ"
    if case.expect == "invalid" and not 400 <= status < 500:
        return f"accepted an invalid manifest: {status}"
    return None if status == 201 else _left_nothing(oci, repo, case, tag)


def test_generated_manifests(oci: OCIClient, repo: str) -> None:
    """A few hundred seeded cases; every problem is collected and reported with the seed."""
    seed = _seed()
    rng = random.Random(seed)
    base = _base(oci, repo)
    problems: list[str] = []
    counts = {"valid": 0, "invalid": 0, "unknown": 0}
    for i in range(CASES):
        case = rng.choice(MUTATIONS)(rng, base)
        counts[case.expect] += 1
        problem = _check(oci, repo, case, f"f{i}")
        if problem is not None:
            problems.append(f"case {i} ({case.name[:120]}): {problem}")
    assert counts["valid"], counts
    assert counts["invalid"], counts
    assert not problems, (
        f"MOORAGE_FUZZ_SEED={seed}: {len(problems)} of {CASES} cases\n" + "\n".join(problems[:30])
    )
