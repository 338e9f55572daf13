"""RFC 3550 appendix A statistics on scripted packet sequences with hand-computed values."""

from __future__ import annotations

import pytest

from hivecast.rtp.jitterbuffer import JitterBuffer
from hivecast.rtp.packet import RtpPacket
from hivecast.rtp.rtcp import ReportBlock, compact_ntp_from_unix, ntp_from_unix
from hivecast.rtp.stats import ReceiverStats, round_trip_time


def feed(stats: ReceiverStats, seqs: list[int]) -> None:
    for i, seq in enumerate(seqs):
        stats.on_packet(seq, seq * 160, i * 0.02)


def test_loss_counts_with_probation() -> None:
    # A.1: the first packet only starts probation; counting begins with the second (seq 1).
    stats = ReceiverStats(1, 8000)
    feed(stats, [0, 1, 2, 4, 5, 6, 8, 9])
    assert stats.expected == 9 and stats.received == 7 and stats.lost == 2
    assert stats.take_fraction_lost() == (2 * 256) // 9 == 56
    feed(stats, [10, 11, 12, 13])  # no loss in the next interval
    assert stats.take_fraction_lost() == 0 and stats.lost == 2


def test_reorder_is_not_loss() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    feed(stats, [100, 101, 103, 102, 104])
    assert stats.extended_max == 104 and stats.received == 5 and stats.lost == 0
    block = stats.report_block(1.0)
    assert block.packets_lost == 0 and block.fraction_lost == 0 and block.highest_sequence == 104


def test_duplicates_make_loss_negative() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    feed(stats, [5, 6, 6, 7])
    assert stats.lost == -1


def test_sequence_wrap_extends_highest() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    feed(stats, [65534, 65535, 0, 1])
    assert stats.cycles == 65536 and stats.extended_max == 65537 and stats.lost == 0


def test_large_jump_restarts_after_two_in_sequence() -> None:
    stats = ReceiverStats(1, 8000, probation=0)
    feed(stats, [10, 11])
    assert not stats.on_packet(30000, 0, 1.0)
    assert stats.on_packet(30001, 0, 1.02)
    assert stats.base_seq == 30001 and stats.received == 1


def test_jitter_matches_rfc_formula() -> None:
    # clock 1000 Hz: packets every 20 units; every other packet is 16 ms late, so |D| = 16 each time.
    stats = ReceiverStats(1, 1000, probation=0)
    for i in range(4):
        stats.on_packet(i, i * 20, i * 0.020 + (0.016 if i % 2 else 0.0))
    j1 = 16 / 16
    j2 = j1 + (16 - j1) / 16
    j3 = j2 + (16 - j2) / 16
    assert stats.jitter == pytest.approx(j3) == pytest.approx(2.81640625)
    assert stats.report_block(1.0).jitter == 2


def test_lsr_dlsr_and_round_trip() -> None:
    stats = ReceiverStats(7, 90000, probation=0)
    sr_sent = 1_700_000_000.25
    stats.on_sender_report(ntp_from_unix(sr_sent), arrival=50.0)
    stats.on_packet(1, 0, 50.0)
    block = stats.report_block(now=50.5)  # the receiver held the SR for 0.5 s
    assert block.lsr == compact_ntp_from_unix(sr_sent)
    assert block.dlsr == 32768
    # The RR comes back 0.5 s (hold) + 0.1 s (network) after the SR left.
    rtt = round_trip_time(block, sr_sent + 0.6)
    assert rtt == pytest.approx(0.1, abs=1e-4)
    assert round_trip_time(ReportBlock(7, 0, 0, 0, 0, 0, 0), sr_sent) is None


def pkt(seq: int) -> RtpPacket:
    return RtpPacket(96, seq & 0xFFFF, seq * 10, 1, bytes((seq & 0xFF,)))


def test_jitter_buffer_reorders_and_declares_loss() -> None:
    jb = JitterBuffer(capacity=4, latency=0.1)
    assert [p.sequence_number for p in jb.push(pkt(1), 0.0)] == [1]
    assert jb.push(pkt(3), 0.01) == []
    assert [p.sequence_number for p in jb.push(pkt(2), 0.02)] == [2, 3]
    assert jb.push(pkt(5), 0.03) == []  # 4 is missing
    assert [p.sequence_number for p in jb.pop_ready(0.2)] == [5]
    assert jb.lost == 1
    assert jb.push(pkt(4), 0.21) == [] and jb.dropped == 1  # too late


def test_jitter_buffer_wraps_and_bounds() -> None:
    jb = JitterBuffer(capacity=3, latency=10)
    out = [p.sequence_number for s in (65534, 65535, 0, 1) for p in jb.push(pkt(s), 0.0)]
    assert out == [65534, 65535, 0, 1]
    for s in (3, 4, 5):
        out = [p.sequence_number for p in jb.push(pkt(s), 0.0)]
    assert out == [3, 4, 5] and jb.lost == 1
