from __future__ import annotations

import random

from hivecast.p2p.bitfield import Bitfield
from hivecast.p2p.choker import ChokerState, PeerStats, choke_round, is_snubbed
from hivecast.p2p.picker import PiecePicker


def full(n: int) -> Bitfield:
    return Bitfield(n, full=True)


def test_rarest_first_after_random_start() -> None:
    p = PiecePicker(4, 32768, 4 * 32768, random_first=0, rng=random.Random(1))
    a, b = full(4), Bitfield(4)
    b.add(0)
    b.add(1)
    b.add(2)
    p.peer_added(a)
    p.peer_added(b)  # piece 3 is rarest
    blocks = p.pick("A", a, 2)
    assert blocks == [(3, 0, 16384), (3, 16384, 16384)]


def test_partial_pieces_then_priority_window() -> None:
    p = PiecePicker(10, 32768, 10 * 32768, random_first=0, rng=random.Random(2))
    p.peer_added(full(10))
    first = p.pick("A", full(10), 1)
    assert len(first) == 1
    # The started piece is finished before another opens.
    assert p.pick("B", full(10), 1)[0][0] == first[0][0]
    p.set_priority([7, 8])
    assert [b[0] for b in p.pick("C", full(10), 4)] == [7, 7, 8, 8]


def test_last_piece_short_block() -> None:
    p = PiecePicker(2, 32768, 32768 + 100, random_first=0)
    p.set_priority([1])
    assert p.pick("A", full(2), 1) == [(1, 0, 100)]


def test_block_received_hash_fail_and_endgame() -> None:
    p = PiecePicker(1, 32768, 32768, random_first=0)
    blocks = p.pick("A", full(1), 10)
    assert len(blocks) == 2 and p.in_endgame()
    # Endgame: another peer may ask for the same outstanding blocks.
    assert p.pick("B", full(1), 10) == blocks
    assert not p.block_received(0, 0)
    assert p.block_received(0, 16384)
    p.piece_failed(0)
    assert p.pick("C", full(1), 10) == blocks  # fetched again from scratch
    p.mark_have(0)
    assert p.complete and p.pick("C", full(1), 10) == []


def test_cancel_peer_frees_blocks() -> None:
    p = PiecePicker(1, 16384, 16384, random_first=0)
    assert p.pick("A", full(1), 1)
    p.cancel_peer("A")
    assert p.pick("B", full(1), 1) == [(0, 0, 16384)]


def stats(key: str, rate: float, *, interested: bool = True, now: float = 100.0, last: float | None = 99.0,
          unchoking_us: bool = True) -> PeerStats:
    return PeerStats(key, interested, rate, rate, last, unchoking_us, now - 50)


def test_choker_tit_for_tat_and_optimistic() -> None:
    peers = [stats(k, r) for k, r in [("a", 10), ("b", 50), ("c", 30), ("d", 5), ("e", 1), ("f", 0)]]
    unchoked, state = choke_round(peers, ChokerState(), now=100.0, seeding=False, slots=4, rng=random.Random(3))
    assert {"b", "c", "a"} <= unchoked and len(unchoked) == 4
    opt = state.optimistic
    assert opt in {"d", "e", "f"}
    # The optimistic slot holds for three rounds (30 s), then moves.
    for _ in range(2):
        unchoked, state = choke_round(peers, state, now=100.0, seeding=False, slots=4, rng=random.Random(4))
        assert state.optimistic == opt


def test_choker_snubbed_and_uninterested() -> None:
    peers = [stats("fast", 100, last=10.0), stats("slow", 1), stats("idle", 500, interested=False)]
    assert is_snubbed(peers[0], 100.0, seeding=False)
    unchoked, _ = choke_round(peers, ChokerState(round=1, optimistic="slow"), now=100.0, seeding=False, slots=2)
    assert "idle" not in unchoked and "slow" in unchoked


def test_seeding_ranks_by_upload() -> None:
    peers = [PeerStats("x", True, 0, 100, None, False, 0), PeerStats("y", True, 0, 5, None, False, 0)]
    unchoked, _ = choke_round(peers, ChokerState(round=1, optimistic="y"), now=1.0, seeding=True, slots=2)
    assert unchoked == {"x", "y"}
