"""Per-source reception statistics exactly as RFC 3550 appendix A defines them. Sans I/O.

`ReceiverStats` follows A.1 (sequence validation, extended highest sequence), A.3 (cumulative and
fractional loss) and A.8 (interarrival jitter); it remembers the last SR for LSR/DLSR. On the sender
side `round_trip_time()` turns a report block back into an RTT. Time comes in as `now` (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from hivecast.rtp.rtcp import ReportBlock, compact_ntp_from_unix, ntp_middle32

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class ReceiverStats:
    def __init__(self, ssrc: int, clock_rate: int, *, probation: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = probation
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: float | None = None
        self.jitter = 0.0
        self.octets = 0
        self.last_sr_ntp_middle = 0
        self.last_sr_arrival: float | None = None
        self.started = False
        self.duplicates_or_late = 0

    # --- A.1 ----------------------------------------------------------------------------------
    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update_seq(self, seq: int) -> bool:
        """Account one packet's sequence number; False when the packet is not (yet) valid."""
        if not self.started:
            self.started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) % RTP_SEQ_MOD
            if self.probation == 0:
                self.max_seq = seq
                self.received += 1
                return True
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            # The source is valid once MIN_SEQUENTIAL packets arrived in sequence.
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: if the next packet follows it, the sender restarted.
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
                return False
        else:
            self.duplicates_or_late += 1  # duplicate or reordered packet
        self.received += 1
        return True

    # --- A.8 ----------------------------------------------------------------------------------
    def update_jitter(self, rtp_timestamp: int, arrival: float) -> None:
        arrival_units = arrival * self.clock_rate
        transit = arrival_units - rtp_timestamp
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16.0
        self.transit = transit

    def on_packet(self, sequence_number: int, rtp_timestamp: int, arrival: float, size: int = 0) -> bool:
        valid = self.update_seq(sequence_number)
        if valid:
            self.update_jitter(rtp_timestamp, arrival)
            self.octets += size
        return valid

    def on_sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        self.last_sr_ntp_middle = ntp_middle32(ntp_timestamp)
        self.last_sr_arrival = arrival

    # --- A.3 ----------------------------------------------------------------------------------
    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if not self.started or self.probation:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost, clamped to the 24-bit signed field."""
        lost = self.expected - self.received
        return max(-0x800000, min(0x7FFFFF, lost))

    def take_fraction_lost(self) -> int:
        """Fraction lost since the previous call, 8-bit fixed point; advances the interval."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    def report_block(self, now: float) -> ReportBlock:
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int(max(0.0, now - self.last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.take_fraction_lost(),
            packets_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self.last_sr_ntp_middle,
            dlsr=dlsr,
        )


def round_trip_time(block: ReportBlock, arrival_unix: float) -> float | None:
    """RTT in seconds from a report block about our SRs (RFC 3550 6.4.1: A - LSR - DLSR)."""
    if block.lsr == 0:
        return None
    a = compact_ntp_from_unix(arrival_unix)
    rtt_units = (a - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt_units > 0x80000000:  # negative: clocks disagree or the report is bogus
        return None
    return rtt_units / 65536.0


@dataclass(slots=True)
class SenderStats:
    """What an RTP sender counts for its SRs (RFC 3550 section 6.4.1 sender info)."""

    packets: int = 0
    octets: int = 0

    def on_sent(self, payload_size: int) -> None:
        self.packets += 1
        self.octets += payload_size
