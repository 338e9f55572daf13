from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.p2p import bencode
from hivecast.p2p.errors import MetainfoError
from hivecast.p2p.metainfo import (
    Layout,
    build_info,
    create_torrent,
    encode_torrent,
    parse_info,
    parse_torrent,
)


def make_tree(root: Path) -> Path:
    d = root / "video"
    (d / "sub").mkdir(parents=True)
    (d / "a.mp4").write_bytes(os.urandom(100_000))
    (d / "sub" / "b.m4s").write_bytes(os.urandom(40_000))
    (d / "empty").write_bytes(b"")
    return d


def test_multi_file_round_trip(tmp_path: Path) -> None:
    d = make_tree(tmp_path)
    raw = build_info(d, piece_length=16384)
    info = parse_info(raw)
    assert info.info_hash == hashlib.sha1(raw).digest()
    assert info.multi_file and info.name == "video"
    assert [f.path for f in info.files] == [("a.mp4",), ("empty",), ("sub", "b.m4s")]
    assert info.total_length == 140_000 and info.num_pieces == 9
    data = (d / "a.mp4").read_bytes() + (d / "sub" / "b.m4s").read_bytes()
    for i, h in enumerate(info.piece_hashes):
        assert hashlib.sha1(data[i * 16384 : (i + 1) * 16384]).digest() == h
    meta = parse_torrent(encode_torrent(raw, announce=["http://t/announce", "udp://t:1"], web_seeds=["http://w/"]))
    assert meta.info.info_hash == info.info_hash
    assert meta.trackers == ["http://t/announce", "udp://t:1"]
    assert meta.url_list == ("http://w/",)


async def test_single_file_hashed_off_loop(tmp_path: Path) -> None:
    f = tmp_path / "one.mp4"
    f.write_bytes(os.urandom(50_000))
    meta = parse_torrent(await create_torrent(f, piece_length=32768))
    assert not meta.info.multi_file and meta.info.total_length == 50_000 and meta.info.num_pieces == 2


def test_selected_files_only(tmp_path: Path) -> None:
    d = make_tree(tmp_path)
    info = parse_info(build_info(d, files=["sub/b.m4s"], piece_length=16384))
    assert [f.path for f in info.files] == [("sub", "b.m4s")]
    with pytest.raises(MetainfoError):
        build_info(d, files=["../etc/passwd"])


def info_dict(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "x", "piece length": 16384, "length": 10, "pieces": b"\0" * 20}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("over", [
    {"name": ".."}, {"name": "a/b"}, {"name": None}, {"piece length": 0}, {"piece length": 100},
    {"pieces": b"\0" * 19}, {"pieces": b"\0" * 40}, {"length": -1},
    {"length": None, "files": [{"length": 1, "path": ["..", "x"]}]},
    {"length": None, "files": [{"length": 1, "path": []}]},
    {"length": None, "files": []},
    {"files": [{"length": 1, "path": ["a"]}]},
    {"length": None, "files": [{"length": 5, "path": ["a"]}, {"length": 5, "path": ["a"]}]},
    {"meta version": 2, "pieces": None},
])
def test_rejects_bad_info(over: dict[str, object]) -> None:
    with pytest.raises(MetainfoError):
        parse_info(bencode.encode(info_dict(**over)))


def test_hybrid_with_pad_files() -> None:
    # The v1 half of a hybrid torrent: a pad file aligns the second file to a piece boundary (BEP 47).
    info = {
        "name": "h", "piece length": 16384, "meta version": 2, "file tree": {},
        "files": [
            {"length": 100, "path": ["a"]},
            {"attr": "p", "length": 16284, "path": [".pad", "16284"]},
            {"length": 10, "path": ["b"]},
        ],
        "pieces": b"\1" * 40,
    }
    raw = bencode.encode(info)
    parsed = parse_info(raw)
    assert parsed.hybrid and parsed.info_hash_v2 == hashlib.sha256(raw).digest()
    assert [f.pad for f in parsed.files] == [False, True, False]
    spans = Layout(parsed).spans(1, 0, 10)
    assert spans[0].file_index == 2 and spans[0].file_offset == 0


def test_layout_spans_cross_files(tmp_path: Path) -> None:
    info = parse_info(build_info(make_tree(tmp_path), piece_length=16384))
    spans = Layout(info).spans(6, 0, 16384)  # bytes 98304..114688: end of a.mp4, then b.m4s
    assert [(s.file_index, s.file_offset, s.length) for s in spans] == [(0, 98304, 1696), (2, 0, 14688)]
    with pytest.raises(MetainfoError):
        Layout(info).spans(8, 0, 16384)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_torrent_bytes(data: bytes) -> None:
    try:
        parse_torrent(data)
    except MetainfoError:
        pass


@given(st.dictionaries(st.sampled_from(["name", "piece length", "length", "pieces", "files", "private"]),
                       st.one_of(st.integers(-5, 2**20), st.binary(max_size=45),
                                 st.lists(st.dictionaries(st.sampled_from(["length", "path", "attr"]),
                                                          st.one_of(st.integers(-2, 50), st.binary(max_size=4),
                                                                    st.lists(st.binary(max_size=4), max_size=3)),
                                                          max_size=3), max_size=3)), max_size=6))
@settings(max_examples=400, deadline=None)
def test_fuzz_info_structure(info: dict[str, object]) -> None:
    try:
        parsed = parse_info(bencode.encode(info))
    except MetainfoError:
        return
    assert parsed.num_pieces * parsed.piece_length >= parsed.total_length
    for f in parsed.files:
        assert all(p not in ("", ".", "..") and "/" not in p for p in f.path)


async def test_hybrid_creation_layout(tmp_path: Path) -> None:
    d = make_tree(tmp_path)  # a.mp4 100000, empty 0, sub/b.m4s 40000
    data = await create_torrent(d, piece_length=32768, hybrid=True)
    top = bencode.decode(data)
    meta = parse_torrent(data)
    assert meta.info.hybrid and meta.info.info_hash_v2 == hashlib.sha256(meta.info.raw).digest()
    assert [(f.path, f.pad) for f in meta.info.files] == [
        (("a.mp4",), False), ((".pad", "31072"), True), (("empty",), False), (("sub", "b.m4s"), False),
        ((".pad", "25536"), True)]
    # Every non-empty file starts on a piece boundary; one piece-layer hash per piece of a.mp4 and b.m4s.
    assert [f.offset % 32768 for f in meta.info.files if not f.pad and f.length] == [0, 0]
    assert sorted(len(v) for v in top[b"piece layers"].values()) == [2 * 32, 4 * 32]
    tree = top[b"info"][b"file tree"]
    assert tree[b"empty"] == {b"": {b"length": 0}}
    assert len(tree[b"sub"][b"b.m4s"][b""][b"pieces root"]) == 32
