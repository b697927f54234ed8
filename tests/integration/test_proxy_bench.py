"""bench.proxy pulls through both caches and says whose CPU each pull used."""

from __future__ import annotations

import pytest

from bench.proxy import main

pytestmark = pytest.mark.integration


def test_each_case_reports_the_cpu_of_each_cache_its_upstream_and_the_client() -> None:
    lines = main(["--images", "2", "--layers", "1", "--layer-mib", "32", "--repeats", "1"])
    assert [line["case"] for line in lines] == ["proxy-cold", "proxy-warm"]
    cold, warm = lines
    for line in lines:
        assert line["bytes"] == 2 * 32 * 1024 * 1024
        assert line["ratio"] > 0
        assert set(line["cpu_seconds"]) == {"moorage", "docker-registry"}
        for sides in line["cpu_seconds"].values():
            assert set(sides) == {"cache", "upstream", "client"}
            assert sides["client"] > 0  # skopeo hashed and wrote 64 MiB
    # a cold pull is the upstream's work too; a warm one is served by the cache alone
    for name in ("moorage", "docker-registry"):
        assert cold["cpu_seconds"][name]["cache"] > 0
        assert cold["cpu_seconds"][name]["upstream"] > warm["cpu_seconds"][name]["upstream"]
