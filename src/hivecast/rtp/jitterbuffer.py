"""A reorder (jitter) buffer: packets in, packets out in sequence order. Sans I/O.

Packets are held until the next expected sequence number arrives, or until the buffer holds
`capacity` packets or its oldest packet has waited `latency` seconds; then the gap is declared
lost and output skips over it. Duplicates and packets older than what was already released are
dropped and counted.
"""

from __future__ import annotations

from hivecast.rtp.packet import RtpPacket

SEQ_MOD = 1 << 16


class JitterBuffer:
    def __init__(self, *, capacity: int = 128, latency: float = 0.2) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.latency = latency
        self._packets: dict[int, tuple[RtpPacket, float]] = {}
        self._next: int | None = None  # extended sequence number expected next
        self._highest: int | None = None
        self.lost = 0
        self.dropped = 0  # duplicates and packets that came after their slot was given up

    def __len__(self) -> int:
        return len(self._packets)

    def _extend(self, seq: int) -> int:
        """Map a 16-bit sequence number to the extended number closest to the highest seen."""
        if self._highest is None:
            return seq
        base = self._highest - (self._highest % SEQ_MOD)
        candidates = (base - SEQ_MOD + seq, base + seq, base + SEQ_MOD + seq)
        return min(candidates, key=lambda c: abs(c - self._highest))  # type: ignore[operator]

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        ext = self._extend(packet.sequence_number)
        if self._next is None:
            self._next = ext
        if ext < self._next or ext in self._packets:
            self.dropped += 1
            return self.pop_ready(now)
        if ext - self._next > 10 * self.capacity:
            # A jump far ahead (sender restart): start over at this packet.
            self.lost += len(self._packets)
            self._packets.clear()
            self._next = ext
            self._highest = ext
        self._packets[ext] = (packet, now)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        return self.pop_ready(now)

    def pop_ready(self, now: float) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        while self._packets:
            assert self._next is not None
            item = self._packets.pop(self._next, None)
            if item is not None:
                out.append(item[0])
                self._next += 1
                continue
            oldest = min(self._packets)
            waited = now - self._packets[oldest][1]
            if len(self._packets) >= self.capacity or waited >= self.latency:
                self.lost += oldest - self._next
                self._next = oldest
                continue
            break
        return out

    def flush(self) -> list[RtpPacket]:
        """Everything held, in order, gaps skipped (end of stream)."""
        out = [self._packets[k][0] for k in sorted(self._packets)]
        if out and self._next is not None:
            last = max(self._packets)
            self.lost += (last - self._next + 1) - len(out)
            self._next = last + 1
        self._packets.clear()
        return out
