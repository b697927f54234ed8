"""The scanning benchmark's synthesized inputs hold what its report says they hold."""

from __future__ import annotations

import gzip
import json

from bench.scan import MIB, Counts, build_image, osv_records
from core.scan.analyzer import Analyzer
from core.scan.packages import PackageType
from core.scan_settings import ScanSettings


def test_the_image_has_the_stated_packages_per_kind_and_size() -> None:
    counts = Counts.of(250)
    assert counts.total == 250
    source, digest = build_image(counts, 3)
    [result] = Analyzer(ScanSettings()).analyze(source, digest)
    assert result.failure is None
    kinds = [p.type for p in result.packages]
    assert kinds.count(PackageType.DEB) == counts.dpkg == 150
    assert kinds.count(PackageType.PYPI) == counts.python == 50
    assert kinds.count(PackageType.NPM) == counts.npm == 50
    assert result.os is not None
    manifest = json.loads(source.manifests[digest])
    unpacked = sum(
        len(gzip.decompress(source.blobs[layer["digest"]])) for layer in manifest["layers"]
    )
    assert unpacked >= 3 * MIB


def test_the_data_update_changes_a_fifth_and_adds_a_twentieth() -> None:
    first, second = osv_records(1000, 1), osv_records(1000, 2)
    assert sum(len(r) for r in first.values()) == 1000
    assert sum(len(r) for r in second.values()) == 1050
    before = {r["id"]: r for records in first.values() for r in records}
    after = {r["id"]: r for records in second.values() for r in records}
    changed = [i for i in before if before[i] != after[i]]
    assert len(changed) == 200
    assert all(after[i]["modified"] > before[i]["modified"] for i in changed)
