from __future__ import annotations

import asyncio

import pytest

from hivecast.net import AddressInUse, NetTimeout, open_udp


async def test_send_and_receive() -> None:
    a = await open_udp("127.0.0.1", 0)
    b = await open_udp("127.0.0.1", 0)
    try:
        a.send(b"ping", b.local_address)
        data, addr = await b.recv(timeout=2)
        assert data == b"ping"
        assert addr == a.local_address
    finally:
        a.close()
        b.close()


async def test_recv_deadline() -> None:
    a = await open_udp("127.0.0.1", 0)
    try:
        with pytest.raises(NetTimeout):
            await a.recv(timeout=0.1)
    finally:
        a.close()


async def test_full_queue_drops_and_counts() -> None:
    a = await open_udp("127.0.0.1", 0)
    b = await open_udp("127.0.0.1", 0, max_queue=10)
    try:
        for i in range(50):
            a.send(b"%d" % i, b.local_address)
        await asyncio.sleep(0.2)
        assert b.dropped == 40
        assert (await b.recv(timeout=1))[0] == b"0"
    finally:
        a.close()
        b.close()


async def test_bind_conflict_is_typed() -> None:
    a = await open_udp("127.0.0.1", 0)
    try:
        with pytest.raises(AddressInUse):
            await open_udp("127.0.0.1", a.port)
    finally:
        a.close()


async def test_callback_mode() -> None:
    got: list[bytes] = []
    a = await open_udp("127.0.0.1", 0)
    b = await open_udp("127.0.0.1", 0, on_datagram=lambda data, addr: got.append(data))
    try:
        a.send(b"x", b.local_address)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"x"]
    finally:
        a.close()
        b.close()
