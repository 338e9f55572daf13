from __future__ import annotations

import os
from pathlib import Path

from hivecast.p2p.metainfo import build_info, parse_info
from hivecast.p2p.storage import Storage


def test_write_verify_resume(tmp_path: Path) -> None:
    src = tmp_path / "src" / "v"
    src.mkdir(parents=True)
    (src / "a").write_bytes(os.urandom(40_000))
    (src / "b").write_bytes(os.urandom(30_000))
    info = parse_info(build_info(src, piece_length=16384))
    seed = Storage(info, tmp_path / "src", read_only=True)
    assert seed.check_existing().complete
    out = Storage(info, tmp_path / "dst")
    assert out.check_existing().count == 0
    good = seed.read(2, 0, 16384)  # spans a and b
    bad = bytes(len(good))
    assert not out.write_if_valid(2, bad)
    assert not (tmp_path / "dst" / "v" / "a").exists()  # nothing written for a bad piece
    assert out.write_if_valid(2, good)
    out.write_if_valid(0, seed.read(0, 0, 16384))
    out.close()
    # Resume: a fresh Storage finds exactly the pieces on disk.
    again = Storage(info, tmp_path / "dst")
    assert sorted(again.check_existing()) == [0, 2]
    for i in range(info.num_pieces):
        again.write_if_valid(i, seed.read(i, 0, info.piece_size(i)))
    again.sync_sizes()
    assert (tmp_path / "dst" / "v" / "a").read_bytes() == (src / "a").read_bytes()
    assert (tmp_path / "dst" / "v" / "b").read_bytes() == (src / "b").read_bytes()
