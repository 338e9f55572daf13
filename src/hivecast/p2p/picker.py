"""Which blocks to ask a peer for: strict priority window, then partial pieces, then rarest first.

The first few pieces are picked at random (a new peer needs something to trade quickly, and the
rarest piece is slow to get); endgame mode, once every missing block is already requested,
asks for the remaining blocks again from other peers. Sans I/O; `random.Random` is passed in so
tests are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from hivecast.p2p.bitfield import Bitfield

Block = tuple[int, int, int]  # piece, begin, length


@dataclass(slots=True)
class _Partial:
    blocks: int
    requested: dict[int, set[object]] = field(default_factory=dict)  # block -> peers asked
    received: set[int] = field(default_factory=set)


class PiecePicker:
    def __init__(
        self, num_pieces: int, piece_length: int, total_length: int, *, block_size: int = 16 * 1024,
        random_first: int = 4, rng: random.Random | None = None,
    ) -> None:
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.random_first = random_first
        self.rng = rng or random.Random()
        self.have = Bitfield(num_pieces)
        self.availability = [0] * num_pieces
        self.partial: dict[int, _Partial] = {}
        self.priority: list[int] = []  # strict order, e.g. the playback window

    # -- bookkeeping --
    def piece_size(self, index: int) -> int:
        if index < self.num_pieces - 1:
            return self.piece_length
        return self.total_length - self.piece_length * (self.num_pieces - 1)

    def block_length(self, index: int, block: int) -> int:
        return min(self.block_size, self.piece_size(index) - block * self.block_size)

    def peer_added(self, has: Iterable[int]) -> None:
        for i in has:
            self.availability[i] += 1

    def peer_removed(self, has: Iterable[int]) -> None:
        for i in has:
            self.availability[i] = max(0, self.availability[i] - 1)
        for part in self.partial.values():
            for asked in part.requested.values():
                asked.discard(None)

    def peer_have(self, index: int) -> None:
        self.availability[index] += 1

    def set_priority(self, pieces: list[int]) -> None:
        """Pieces that must come first, in order (the streaming window)."""
        self.priority = [p for p in pieces if 0 <= p < self.num_pieces]

    def mark_have(self, index: int) -> None:
        self.have.add(index)
        self.partial.pop(index, None)

    def block_received(self, index: int, begin: int) -> bool:
        """Record a block; True when the whole piece has arrived (ready to verify)."""
        part = self.partial.get(index)
        if part is None or begin % self.block_size:
            return False
        block = begin // self.block_size
        part.requested.pop(block, None)
        part.received.add(block)
        return len(part.received) == part.blocks

    def piece_failed(self, index: int) -> None:
        """The hash did not match: forget every block of it so it is fetched again."""
        self.partial.pop(index, None)

    def cancel_peer(self, peer: object) -> None:
        """A peer left or choked us: its outstanding blocks may be asked of others."""
        for part in self.partial.values():
            for block in list(part.requested):
                asked = part.requested[block]
                asked.discard(peer)
                if not asked:
                    del part.requested[block]

    def request_failed(self, peer: object, index: int, begin: int) -> None:
        part = self.partial.get(index)
        if part is not None:
            asked = part.requested.get(begin // self.block_size)
            if asked is not None:
                asked.discard(peer)
                if not asked:
                    del part.requested[begin // self.block_size]

    @property
    def complete(self) -> bool:
        return self.have.complete

    def in_endgame(self) -> bool:
        """Every missing block is already requested from someone."""
        if self.num_pieces - self.have.count > len(self.partial):
            return False
        return all(len(p.requested) + len(p.received) == p.blocks for p in self.partial.values())

    # -- picking --
    def _candidates(self, peer_has: Bitfield) -> list[int]:
        missing = [i for i in peer_has if not self.have[i] and i not in self.partial]
        if not missing:
            return []
        if self.have.count < self.random_first:
            self.rng.shuffle(missing)
            return missing
        # Rarest first; the random key breaks ties so peers do not all chase the same piece.
        keys = {i: (self.availability[i], self.rng.random()) for i in missing}
        missing.sort(key=keys.__getitem__)
        return missing

    def _open_blocks(self, index: int, peer: object, out: list[Block], want: int) -> None:
        part = self.partial.get(index)
        if part is None:
            size = self.piece_size(index)
            part = _Partial(blocks=(size + self.block_size - 1) // self.block_size)
            self.partial[index] = part
        for b in range(part.blocks):
            if len(out) >= want:
                return
            if b in part.received or b in part.requested:
                continue
            part.requested[b] = {peer}
            out.append((index, b * self.block_size, self.block_length(index, b)))

    def pick(self, peer: object, peer_has: Bitfield, want: int) -> list[Block]:
        """Up to `want` blocks to request from this peer, marked as requested by it."""
        out: list[Block] = []
        if want <= 0:
            return out
        for index in self.priority:
            if not self.have[index] and index in peer_has:
                self._open_blocks(index, peer, out, want)
                if len(out) >= want:
                    return out
        # Finish what is started before opening new pieces: fewer partial pieces, sooner haves.
        for index in list(self.partial):
            if index in peer_has:
                self._open_blocks(index, peer, out, want)
                if len(out) >= want:
                    return out
        for index in self._candidates(peer_has):
            self._open_blocks(index, peer, out, want)
            if len(out) >= want:
                return out
        if not out and self.in_endgame():
            for index, part in self.partial.items():
                if index not in peer_has:
                    continue
                for b, asked in part.requested.items():
                    if peer not in asked and b not in part.received and len(asked) < 3:
                        asked.add(peer)
                        out.append((index, b * self.block_size, self.block_length(index, b)))
                        if len(out) >= want:
                            return out
        return out


__all__ = ["Block", "PiecePicker"]
