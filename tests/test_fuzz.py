"""No message of any shape, size or depth ends a session (issue 13 point 1).

A seeded, bounded fuzz over a real aiortc data channel against the real server's bot:
every valid ping interleaved with the junk is answered, in order, and the session is
still listed afterwards.
"""

import json
import math
import random

import pytest

from tests.conftest import run_server
from tests.peer import Peer

SEED = 1313
JUNK_MESSAGES = 3000
PING_EVERY = 6  # one valid ping after every 6 junk messages: 500 pings


def junk(rng: random.Random) -> str | bytes:
    """One hostile message: deep nesting, huge, undecodable, odd numbers, wrong shapes."""
    depth = rng.choice([200, 999, 1000, 1001, 3000, 20000])
    big = rng.choice([1, 10, 1000, 30000])
    kind = rng.randrange(16)
    if kind == 0:
        return "[" * depth + "]" * depth
    if kind == 1:
        return '{"a":' * depth + "1" + "}" * depth
    if kind == 2:
        return '{"type": "ping", "timestamp": 1, "seq": ' + "[" * depth + "]" * depth + "}"
    if kind == 3:
        return json.dumps({"type": "ping", "timestamp": 1.0, "pad": "x" * big * 2})
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))  # invalid UTF-8
    if kind == 5:
        return rng.choice(['{"type": "ping", "timestamp": NaN}', '{"timestamp": -Infinity}'])
    if kind == 6:
        return '{"type": "ping", "timestamp": 1' + "0" * 400 + "}"  # 10**400
    if kind == 7:
        return '{"type": "ping", "timestamp": 1' + "0" * 5000 + "}"  # over the digit limit
    if kind == 8:
        return '{"type": "ping", "timestamp": 1e400}'  # inf
    if kind == 9:
        return rng.choice(["42", "null", "true", '"ping"', "[]", "[1, 2]", '"\\ud800"', ""])
    if kind == 10:
        value = rng.choice([[1], {"t": 1}, "ping", None, True, 1.5, -(10**30)])
        field = rng.choice(["type", "timestamp", "seq", "label", "id", "data"])
        return json.dumps({"type": "ping", "timestamp": 1, field: value})
    if kind == 11:
        return '{"type": "ping", "timestamp": 1, "seq": "' + "\\u00e9" * big + '"}'
    if kind == 12:
        kind_, id_ = rng.choice(["client-ready", "x", 7]), rng.choice([None, 1, "a"])
        data = rng.choice([None, [], {}])
        return json.dumps({"label": "rtvi-ai", "type": kind_, "id": id_, "data": data})
    if kind == 13:
        data = rng.choice([{"t": "ping"}, {"t": "ping", "d": 5}, {"d": {}}, {"t": "x", "d": 1}])
        return json.dumps({"label": "rtvi-ai", "type": "client-message", "id": "f", "data": data})
    if kind == 14:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
    return '{"type": "ping", "timestamp": ' + rng.choice(["1", "[", "}", '"', "1,"]) * 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server with a message bound far above the fuzz's rate (tests/test_rate_bound.py
    covers the bound): every junk message is decoded and handled, none dropped unread."""
    with run_server(tmp_path_factory.mktemp("fuzz"), MAX_MESSAGES_PER_SECOND="1000000") as running:
        yield running


async def test_a_fuzzed_session_answers_every_valid_ping(server):
    rng = random.Random(SEED)
    peer = await Peer().connect(f"{server.url}/api/offer")
    seqs = []
    oversized = 0
    for index in range(JUNK_MESSAGES):
        message = junk(rng)
        oversized += len(message.encode() if isinstance(message, str) else message) > 64 * 1024
        peer.send(message)
        if index % PING_EVERY == PING_EVERY - 1:
            seq = f"valid-{len(seqs)}"
            seqs.append(seq)
            peer.send({"type": "ping", "timestamp": 1000.0 + len(seqs), "seq": seq})
            await peer.drain()

    valid = set(seqs)

    def pongs(replies):
        return [r for r in replies if r.get("type") == "pong" and str(r.get("seq")) in valid]

    replies = await peer.collect(lambda r: len(pongs(r)) >= len(seqs), within=30)
    answered = pongs(replies)
    assert [p["seq"] for p in answered] == seqs
    assert [p["client_timestamp"] for p in answered] == [1001.0 + n for n in range(len(seqs))]
    assert len(seqs) == JUNK_MESSAGES // PING_EVERY == 500
    # Everything else got at most an error back, never anything broken.
    for reply in replies:
        assert isinstance(reply, dict)
        assert reply.get("type") in {"pong", "error"} or reply.get("label") == "rtvi-ai"
    # The session is alive and counted every answered ping.
    [room] = [r for r in server.rooms() if r["id"] == peer.pc_id]
    assert room["pings_answered"] >= len(seqs)
    assert room["messages_dropped"] == oversized > 0  # over MAX_MESSAGE_BYTES, unread
    peer.send({"type": "ping", "timestamp": math.pi, "seq": "after"})
    [last] = await peer.collect(lambda r: len(r) >= 1, within=5, quiet=0)
    assert last["seq"] == "after"
    await peer.close()
