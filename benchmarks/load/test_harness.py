"""The harness's own pieces, without servers: framing round trips, percentiles, the gate."""

from __future__ import annotations

import zlib
from typing import Any

from tests.support.engine_independent import engine  # noqa: F401  (nothing engine-specific)

from .frames import TEXT, FrameParser, accept_key, client_frame, server_frame
from .run import cell, gate, percentiles, ratio


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_round_trip_in_pieces() -> None:
    payloads = [b"", b"x" * 5, b"y" * 300, b"z" * 70_000]
    data = b"".join(client_frame(p) for p in payloads) + server_frame(b"done")
    parser = FrameParser()
    got = []
    for i in range(0, len(data), 7):
        got += parser.feed(data[i : i + 7])
    assert got == [(TEXT, p) for p in [*payloads, b"done"]]


def test_compressed_frames_are_inflated() -> None:
    deflater = zlib.compressobj(wbits=-15)
    body = deflater.compress(b'{"tree":{}}') + deflater.flush(zlib.Z_SYNC_FLUSH)
    frame = bytes([0x80 | 0x40 | TEXT, len(body[:-4])]) + body[:-4]
    assert FrameParser(inflate=True).feed(frame) == [(TEXT, b'{"tree":{}}')]


def test_percentiles_in_milliseconds() -> None:
    figures = percentiles([i / 1000 for i in range(1, 101)])
    assert figures["n"] == 100
    assert figures["p50"] == 51.0
    assert figures["max"] == 100.0
    assert percentiles([]) == {"n": 0}


def _results() -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's figures that pass every gate but the fan-out's (4x the floor)."""
    gc = {"longest_ms": [1.0, 2.0, 3.0]}
    lt = {
        "target": "livetemplate",
        "connections": 10,
        "opened": 10,
        "kib_per_connection": 25.0,
        "tasks_per_connection": 1.0,
        "rate": {"p95": 4.0},
        "fanout": {"best_ms": 30.0, "median_ms": 40.0},
        "gc_objects_per_connection": 50.0,
        "gc_under_load": gc,
        "gc_fanout": gc,
    }
    return lt, {"target": "floor", "fanout": {"best_ms": 10.0, "median_ms": 10.0}}


def test_gate_fails_on_fanout_and_passes_the_rest() -> None:
    lt, floor = _results()
    passed, text = gate([lt, floor])
    assert not passed
    assert "| fan-out to N ÷ raw floor, same run, median rounds | 4.00 | <= 3 | 1.5 | FAIL" in text
    assert "| fan-out to N ÷ raw floor, best rounds | 3.00 | | 1.5 | reported |" in text
    lt["fanout"] = {"best_ms": 40.0, "median_ms": 20.0}  # the medians count; the best is reported
    passed, text = gate([lt, floor])
    assert passed
    assert "| fan-out to N ÷ raw floor, best rounds | 4.00 | | 1.5 | reported |" in text


def test_an_advisory_gate_is_reported_and_does_not_count() -> None:
    lt, floor = _results()
    passed, text = gate([lt, floor], advisory=["fanout_ratio"])
    assert passed
    assert "| fan-out to N ÷ raw floor, same run, median rounds | 4.00 | <= 3 | 1.5 | FAIL (advisory)" in text
    lt["kib_per_connection"] = 31.0  # the others still count
    passed, text = gate([lt, floor], advisory=["fanout_ratio"])
    assert not passed
    assert "| memory per idle connection (KiB) | 31.00 | <= 30 | 12 | FAIL" in text


def test_the_fan_outs_cpu_is_split_into_user_and_kernel_time() -> None:
    fanout = {"cpu_us_per_recipient": 25.0, "cpu_user_us_per_recipient": 14.2, "cpu_system_us_per_recipient": 11.4}
    assert cell({"fanout": fanout}, "fanout_cpu") == "25.0"
    assert cell({"fanout": fanout}, "fanout_cpu_split") == "14.2 / 11.4"
    assert cell({"fanout": {"cpu_us_per_recipient": 5.0}}, "fanout_cpu_split") == ""  # a run from before the split
    assert cell({}, "fanout_cpu_split") == ""  # an idle-only target


def test_the_bursts_server_cpu_is_shown_and_compared() -> None:
    lt = {"burst": {"p50": 5.0, "p95": 10.0, "max": 12.0, "n": 1000, "server_cpu_us_per_action": 52.5}}
    peer = {"burst": {"p50": 20.0, "p95": 40.0, "max": 45.0, "n": 1000, "server_cpu_us_per_action": 210.0}}
    assert cell(lt, "burst_cpu") == "52.5"
    assert ratio(peer, lt, "burst_cpu") == "4.00x"
    assert cell({"burst": {"p95": 1.0}}, "burst_cpu") == ""  # a run from before the figure
