import math

import pytest

from echo_bench.stats import (
    PingLog,
    PingOutcome,
    clock_offset,
    describe,
    jitter,
    jitter_rfc3550,
    one_way,
    one_way_problem,
    percentile,
    session_offset,
    summarize,
    summarize_setup,
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


# ---------------------------------------------------------------------------
# Net RTT, clock offset, one-way delays, setup phases: known samples

THETA = 5.0  # the server's clock runs 5 s ahead of the client's


def log_of(pings, theta=THETA, server_shift=()):
    """Pings with known (up, hold, down) delays in ms; the server clock is client + theta.

    `server_shift` maps a seq to ms added to its server times (a clock step mid-run).
    """
    log = PingLog(timeout=5.0)
    for seq, (up, hold, down) in enumerate(pings):
        up, hold, down = up / 1000, hold / 1000, down / 1000
        t0 = 1000.0 + seq  # small times keep the arithmetic exact to 1e-9 s
        log.sent(seq, t0, 100.0 + seq)
        shift = dict(server_shift).get(seq, 0.0) / 1000
        t1 = t0 + up + theta + shift
        log.received(100.0 + seq + up + hold + down, pong(seq, receive=t1, send=t1 + hold))
    return log


def test_net_rtt_is_the_rtt_minus_the_agents_hold():
    log = log_of([(4.0, 2.0, 4.0), (5.0, 1.0, 6.0), (3.0, 0.5, 3.0)])
    assert log.samples[0].net_rtt == pytest.approx(0.008)
    summary = summarize([log])
    assert summary["rtt_ms"]["p50"] == pytest.approx(10.0)
    assert summary["net_rtt_ms"]["p50"] == pytest.approx(8.0)
    assert summary["net_rtt_ms"]["min"] == pytest.approx(6.0)
    assert summary["net_rtt_ms"]["max"] == pytest.approx(11.0)
    assert summary["net_rtt_ms"]["p99"] == pytest.approx(8.0 + 0.98 * 3.0)


def test_an_echoed_ping_has_no_net_rtt():
    log = PingLog(timeout=1.0)
    sample = log.sent(0, 0.0, 10.0)
    log.received(10.003, {"type": "ping", "seq": 0, "timestamp": 0.0})
    assert sample.net_rtt is None
    assert clock_offset(log.ordered()) is None
    summary = summarize([log])
    assert summary["net_rtt_ms"]["p50"] is None
    assert summary["one_way_ms"] is None
    assert summary["one_way_not_given"] == "no pong carried the agent's times"


def test_offset_of_a_symmetric_fastest_ping_is_exact_with_half_its_net_rtt_as_bound():
    # One fast ping (1 ms each way) among nine slow ones; 10 % of 10 pings = the fastest one.
    log = log_of([(1.0, 0.1, 1.0)] + [(5.0, 0.1, 5.0)] * 9)
    offset = clock_offset(log.ordered())
    assert offset.offset == pytest.approx(THETA, abs=1e-9)
    assert offset.bound == pytest.approx(0.001, abs=1e-9)
    assert offset.samples == 1


def test_offset_of_an_asymmetric_ping_is_the_middle_of_its_window():
    # Window: theta - down .. theta + up = theta - 0.5 ms .. theta + 2 ms.
    offset = clock_offset(log_of([(2.0, 0.0, 0.5)]).ordered())
    assert offset.offset == pytest.approx(THETA + 0.00075, abs=1e-9)
    assert offset.bound == pytest.approx(0.00125, abs=1e-9)


def test_offset_intersects_the_windows_of_the_fastest_pings():
    # 20 pings: the two fastest (net 2 ms) are used. Their windows:
    # [theta - 1, theta + 1] and [theta - 1.5, theta + 0.5] ms -> [theta - 1, theta + 0.5].
    log = log_of([(1.0, 0.0, 1.0), (0.5, 0.0, 1.5)] + [(6.0, 0.0, 6.0)] * 18)
    offset = clock_offset(log.ordered())
    assert offset.samples == 2
    assert offset.offset == pytest.approx(THETA - 0.00025, abs=1e-9)
    assert offset.bound == pytest.approx(0.00075, abs=1e-9)


def test_offset_falls_back_to_the_fastest_ping_when_windows_do_not_overlap():
    # Ping 1's server times are 3 ms off (a clock step): its window no longer meets ping 0's.
    pings = [(1.0, 0.0, 0.9), (0.5, 0.0, 1.5)] + [(6.0, 0.0, 6.0)] * 18
    offset = clock_offset(log_of(pings, server_shift=[(1, 3.0)]).ordered())
    assert offset.samples == 1
    assert offset.offset == pytest.approx(THETA + 0.00005, abs=1e-9)  # [-0.9, +1] ms
    assert offset.bound == pytest.approx(0.00095, abs=1e-9)


def test_one_way_delays_when_the_bound_is_small_enough():
    # Fastest ping symmetric (bound 0.5 ms); the others 3 ms up, 7 ms down (net p50 10 ms).
    log = log_of([(0.5, 0.2, 0.5)] + [(3.0, 0.2, 7.0)] * 9)
    offset = clock_offset(log.ordered())
    assert one_way(log.samples[4], offset) == pytest.approx((0.003, 0.007), abs=1e-9)
    summary = summarize([log])
    assert summary["one_way_not_given"] is None
    assert summary["clock_offset_ms"]["offset"] == pytest.approx(THETA * 1000, abs=1e-6)
    assert summary["clock_offset_ms"]["bound"] == pytest.approx(0.5, abs=1e-6)
    assert summary["one_way_ms"]["client_to_agent"]["p50"] == pytest.approx(3.0, abs=1e-6)
    assert summary["one_way_ms"]["agent_to_client"]["p50"] == pytest.approx(7.0, abs=1e-6)
    assert summary["one_way_ms"]["client_to_agent"]["min"] == pytest.approx(0.5, abs=1e-6)


def test_one_way_delays_are_not_given_when_the_bound_is_too_wide():
    # Every ping 1 ms each way: bound 1 ms, net p50 2 ms; 1 > 25 % of 2.
    log = log_of([(1.0, 0.1, 1.0)] * 10)
    offset, problem = session_offset(log)
    assert offset.bound == pytest.approx(0.001, abs=1e-9)
    assert problem == (
        "the clock offset is known to ±1.000 ms, more than 25% of the net RTT p50 (2.000 ms)"
    )
    assert one_way_problem(offset, 0.0041) is None  # 1 ms is under 25 % of 4.1 ms: given
    summary = summarize([log])
    assert summary["one_way_ms"] is None
    assert summary["one_way_not_given"] == problem
    assert summary["clock_offset_ms"]["bound"] == pytest.approx(1.0, abs=1e-6)


def test_pooled_sessions_give_one_way_delays_only_if_every_session_does():
    good = log_of([(0.5, 0.2, 0.5)] + [(3.0, 0.2, 7.0)] * 9)
    wide = log_of([(1.0, 0.1, 1.0)] * 10, theta=-2.0)
    assert summarize([good, good])["one_way_ms"]["agent_to_client"]["p50"] == pytest.approx(7.0)
    pooled = summarize([good, wide])
    assert pooled["clock_offset_ms"] is None  # each session has its own
    assert pooled["one_way_ms"] is None
    assert "±1.000 ms" in pooled["one_way_not_given"]


def test_setup_phases_summarized_over_sessions():
    setups = [
        {"connect": 0.010, "join": 0.050, "first_pong": 0.002},
        {"connect": 0.030, "join": 0.070, "first_pong": 0.004, "bot_ready": 0.020},
        {"connect": 0.020, "join": 0.090, "first_pong": 0.003},
    ]
    phases = summarize_setup(setups)
    assert phases["connect"] == pytest.approx({"p50": 20.0, "min": 10.0, "max": 30.0, "count": 3})
    assert phases["join"]["p50"] == pytest.approx(70.0)
    assert phases["bot_ready"] == pytest.approx({"p50": 20.0, "min": 20.0, "max": 20.0, "count": 1})
    assert summarize_setup([]) == {}
