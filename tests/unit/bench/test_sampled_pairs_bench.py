"""The sampled-pairs bench's headers, pairs and summary."""

from __future__ import annotations

import pytest

from bench.client import RegistryClient, Target
from bench.sampled_pairs import SAMPLED, UNSAMPLED, Pair, parse_args, summary


def test_the_two_traceparents_differ_only_in_the_sampled_flag() -> None:
    assert SAMPLED.endswith("-01")
    assert UNSAMPLED.endswith("-00")
    assert SAMPLED[:-2] == UNSAMPLED[:-2]


def test_a_clients_extra_headers_go_with_every_request_under_its_own() -> None:
    client = RegistryClient(Target("t", "http://127.0.0.1:1"))
    client.extra_headers["traceparent"] = SAMPLED
    headers = client.headers({"Accept": "x"})
    assert headers == {"traceparent": SAMPLED, "Accept": "x"}
    client.extra_headers["traceparent"] = UNSAMPLED
    assert client.headers()["traceparent"] == UNSAMPLED


def test_the_summary_is_of_each_pairs_own_ratio() -> None:
    pairs = [
        Pair("tracing0#1", 0, 2.2, 2.0),  # +10%
        Pair("tracing0#2", 0, 3.0, 3.0),  # 0
        Pair("tracing0#1", 1, 2.04, 2.0),  # +2%
    ]
    assert [round(pair.overhead, 4) for pair in pairs] == [0.1, 0.0, 0.02]
    row = summary("tracing0", pairs)
    assert row["pairs"] == 3
    assert row["median_pct"] == 2.0
    assert row["mean_pct"] == 4.0
    low, high = row["ci95_pct"]
    assert 0.0 <= low <= 2.0 <= high <= 10.0
    assert pairs[0].to_dict()["overhead_pct"] == 10.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--rate", "0"])
    assert parse_args([]).instances == 2
