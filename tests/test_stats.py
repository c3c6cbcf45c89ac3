import math

import pytest

from echo_bench.stats import (
    PingLog,
    PingOutcome,
    describe,
    jitter,
    jitter_rfc3550,
    percentile,
    summarize,
)


def pong(seq, receive=100.0, send=100.0005, kind="pong"):
    return {
        "type": kind,
        "seq": seq,
        "client_timestamp": 1.0,
        "server_receive_time": receive,
        "server_send_time": send,
    }


def log_with(rtts, timeout=5.0, start=10.0, interval=1.0):
    """A log of pings sent every `interval` s, answered after `rtts` (None: lost)."""
    log = PingLog(timeout=timeout)
    for seq, rtt in enumerate(rtts):
        sent = start + seq * interval
        log.sent(seq, 1_700_000_000.0 + seq, sent)
        if rtt is not None:
            log.received(sent + rtt, pong(seq))
    return log


def test_percentiles_interpolate_linearly_between_ranks():
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_describe_known_sample():
    figures = describe([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert figures["min"] == 2.0
    assert figures["max"] == 9.0
    assert figures["mean"] == 5.0
    assert figures["stdev"] == 2.0  # population standard deviation
    assert figures["p50"] == 4.5
    assert describe([]) == dict.fromkeys(("min", "mean", "p50", "p95", "p99", "max", "stdev"))


def test_jitter_is_mean_absolute_difference_of_consecutive_rtts():
    assert jitter([10.0, 12.0, 11.0, 15.0]) == pytest.approx((2 + 1 + 4) / 3)
    assert jitter([3.0, 3.0, 3.0]) == 0.0
    assert jitter([5.0]) is None
    assert jitter([]) is None


def test_rfc3550_jitter_smooths_by_one_sixteenth():
    assert jitter_rfc3550([0.0, 16.0]) == pytest.approx(1.0)
    # J = 1 + (0 - 1)/16 after a second, equal step
    assert jitter_rfc3550([0.0, 16.0, 16.0]) == pytest.approx(15 / 16)
    assert jitter_rfc3550([1.0]) is None


def test_pongs_in_time_become_samples():
    log = PingLog(timeout=1.0)
    sample = log.sent(0, 1_700_000_000.0, 10.0)
    assert log.received(10.004, pong(0, receive=50.0, send=50.0002)) == PingOutcome.SAMPLE
    assert sample.rtt == pytest.approx(0.004)
    assert sample.status == "ok"
    assert sample.server_processing == pytest.approx(0.0002)
    assert log.answered == 1


def test_late_pong_counts_as_lost_never_as_a_sample():
    log = PingLog(timeout=1.0)
    sample = log.sent(0, 0.0, 10.0)
    assert log.received(11.5, pong(0)) == PingOutcome.LATE
    assert sample.rtt is None
    assert sample.late_rtt == pytest.approx(1.5)
    assert sample.status == "late"
    assert sample.server_processing is None
    # and a further copy after that is a duplicate, not a sample either
    assert log.received(11.6, pong(0)) == PingOutcome.DUPLICATE
    assert sample.rtt is None
    summary = summarize([log])
    assert (summary["sent"], summary["received"], summary["lost"]) == (1, 0, 1)
    assert summary["late"] == 1
    assert summary["duplicates"] == 1
    assert summary["loss_pct"] == 100.0
    assert summary["rtt_ms"]["p50"] is None


def test_duplicate_pong_keeps_the_first_rtt():
    log = PingLog(timeout=1.0)
    sample = log.sent(3, 0.0, 10.0)
    assert log.received(10.002, pong(3)) == PingOutcome.SAMPLE
    assert log.received(10.009, pong(3)) == PingOutcome.DUPLICATE
    assert sample.rtt == pytest.approx(0.002)
    assert sample.duplicates == 1
    summary = summarize([log])
    assert summary["received"] == 1
    assert summary["duplicates"] == 1
    assert summary["rtt_ms"]["max"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "message",
    [
        pong(99),  # never sent
        pong("0"),  # not an int
        pong(True),  # bool is no seq
        {"type": "error", "error": "ping has no timestamp", "seq": 0},
        {"type": "pong"},
    ],
)
def test_unexpected_replies_are_counted_and_ignored(message):
    log = PingLog(timeout=1.0)
    sample = log.sent(0, 0.0, 10.0)
    assert log.received(10.001, message) == PingOutcome.UNEXPECTED
    assert sample.rtt is None
    assert log.unexpected == 1


def test_echoed_ping_is_a_reply_without_server_times():
    log = PingLog(timeout=1.0)
    log.sent(0, 0.0, 10.0)
    assert log.received(10.003, {"type": "ping", "seq": 0, "timestamp": 0.0}) == "sample"
    summary = summarize([log])
    assert summary["received"] == 1
    assert summary["server_processing_ms"]["p50"] is None


def test_summary_of_known_samples():
    rtts = [0.010, 0.012, None, 0.011, 0.015]
    summary = summarize([log_with(rtts)])
    assert summary["sent"] == 5
    assert summary["received"] == 4
    assert summary["lost"] == 1
    assert summary["loss_pct"] == pytest.approx(20.0)
    rtt = summary["rtt_ms"]
    assert rtt["min"] == pytest.approx(10.0)
    assert rtt["max"] == pytest.approx(15.0)
    assert rtt["mean"] == pytest.approx(12.0)
    assert rtt["p50"] == pytest.approx(11.5)
    assert rtt["p95"] == pytest.approx(14.55)  # 12 + 0.85 * (15 - 12)
    assert rtt["stdev"] == pytest.approx(math.sqrt((4 + 0 + 1 + 9) / 4))
    # consecutive *received* pings: 10 -> 12 -> 11 -> 15
    assert summary["jitter_ms"] == pytest.approx((2 + 1 + 4) / 3)
    assert summary["server_processing_ms"]["p50"] == pytest.approx(0.5, abs=1e-6)
    assert summary["server_processing_ms"]["count"] == 4


def test_jitter_follows_send_order_not_arrival_order():
    log = PingLog(timeout=5.0)
    log.sent(0, 0.0, 10.0)
    log.sent(1, 0.0, 10.1)
    log.received(10.1 + 0.002, pong(1))  # the second ping's pong overtakes the first's
    log.received(10.0 + 0.200, pong(0))
    assert summarize([log])["jitter_ms"] == pytest.approx(198.0)


def test_pooled_sessions_pool_rtts_but_never_diff_across_sessions():
    a = log_with([0.001, 0.002])
    b = log_with([0.010, 0.011])
    pooled = summarize([a, b])
    assert pooled["sent"] == 4
    assert pooled["received"] == 4
    assert pooled["rtt_ms"]["min"] == pytest.approx(1.0)
    assert pooled["rtt_ms"]["max"] == pytest.approx(11.0)
    assert pooled["jitter_ms"] == pytest.approx(1.0)


def test_nothing_sent():
    summary = summarize([PingLog(timeout=1.0)])
    assert summary["sent"] == 0
    assert summary["loss_pct"] is None
    assert summary["jitter_ms"] is None
