"""The RTMP handshake, sans I/O: C0/C1/C2 and S0/S1/S2, plain and digest forms.

Plain form (RTMP specification 5.2): C1/S1 are 4 bytes time, 4 zero bytes, 1528 random bytes;
each side echoes the other's packet as C2/S2.

Digest form (Flash Player 9+ and most encoders, ffmpeg included): bytes 4..7 of C1 carry a
non-zero version, and 32 bytes of C1 are an HMAC-SHA256 over the rest of the packet, keyed with
the first 30 bytes of the Flash Player key. The digest sits at one of two places ("schemes"),
found from four offset bytes. A server that recognises it answers with an S1 carrying its own
digest (Flash Media Server key, first 36 bytes) and an S2 whose last 32 bytes are an HMAC of the
first 1504 keyed with HMAC(full server key, the client's digest). Players such as ffmpeg verify
that S2 when S1 announces a version, so the server must get it right or answer plainly.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct

from hivecast.rtmp.errors import HandshakeError

RTMP_VERSION = 3
PACKET_SIZE = 1536
DIGEST_SIZE = 32

# Public protocol constants (the keys every RTMP implementation shares).
_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
FMS_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
FP_KEY_PARTIAL = FP_KEY[:30]
FMS_KEY_PARTIAL = FMS_KEY[:36]

SERVER_VERSION = bytes((4, 0, 0, 1))  # a non-zero version marks our S1 as digest form
CLIENT_VERSION = bytes((9, 0, 124, 2))


def _digest_offset(packet: bytes, scheme: int) -> int:
    # Scheme 0: offset bytes at 8..11, digest within 12..739; scheme 1: bytes 772..775, digest within 776..1503.
    base = 8 if scheme == 0 else 772
    return sum(packet[base : base + 4]) % 728 + base + 4


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _packet_digest(packet: bytes, offset: int, key: bytes) -> bytes:
    return _hmac(key, packet[:offset] + packet[offset + DIGEST_SIZE :])


def find_digest(packet: bytes, key: bytes) -> bytes | None:
    """The digest of a C1 (or S1) in either scheme, or None when it is a plain packet."""
    if len(packet) != PACKET_SIZE:
        raise HandshakeError("handshake packet is not 1536 bytes")
    for scheme in (0, 1):
        offset = _digest_offset(packet, scheme)
        digest = packet[offset : offset + DIGEST_SIZE]
        if hmac.compare_digest(digest, _packet_digest(packet, offset, key)):
            return bytes(digest)
    return None


def make_digest_packet(time_ms: int, version: bytes, key: bytes, *, scheme: int = 0) -> bytes:
    packet = bytearray(struct.pack(">I", time_ms & 0xFFFFFFFF) + version + os.urandom(PACKET_SIZE - 8))
    offset = _digest_offset(bytes(packet), scheme)
    packet[offset : offset + DIGEST_SIZE] = _packet_digest(bytes(packet), offset, key)
    return bytes(packet)


def make_plain_packet(time_ms: int) -> bytes:
    return struct.pack(">I", time_ms & 0xFFFFFFFF) + b"\x00" * 4 + os.urandom(PACKET_SIZE - 8)


def make_response_packet(peer_digest: bytes, key: bytes) -> bytes:
    """S2 (or C2) in digest form: random bytes signed with a key derived from the peer's digest."""
    body = os.urandom(PACKET_SIZE - DIGEST_SIZE)
    return body + _hmac(_hmac(key, peer_digest), body)


def verify_response_packet(packet: bytes, own_digest: bytes, key: bytes) -> bool:
    body, sig = packet[: PACKET_SIZE - DIGEST_SIZE], packet[PACKET_SIZE - DIGEST_SIZE :]
    return hmac.compare_digest(sig, _hmac(_hmac(key, own_digest), body))


class State(enum.Enum):
    WAIT_01 = "waiting for version and first packet"
    WAIT_2 = "waiting for the echo packet"
    DONE = "done"


class ServerHandshake:
    """Feed the client's bytes; send `data_to_send()`; when `done`, `leftover` starts the chunk stream."""

    def __init__(self, *, now_ms: int = 0, digest: bool = True) -> None:
        self.state = State.WAIT_01
        self._buf = bytearray()
        self._out = bytearray()
        self._now_ms = now_ms
        self._allow_digest = digest
        self.digest_form = False
        self.client_version = b""
        self.leftover = b""

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> None:
        if self.state is State.DONE:
            raise HandshakeError("handshake already finished")
        self._buf += data
        if self.state is State.WAIT_01:
            if self._buf and self._buf[0] != RTMP_VERSION:
                # 6 and 8 are RTMPE (encrypted); anything else is not RTMP at all.
                raise HandshakeError(f"unsupported RTMP version byte {self._buf[0]}")
            if len(self._buf) < 1 + PACKET_SIZE:
                return
            c1 = bytes(self._buf[1 : 1 + PACKET_SIZE])
            del self._buf[: 1 + PACKET_SIZE]
            self.client_version = c1[4:8]
            self._out.append(RTMP_VERSION)
            client_digest = None
            if self._allow_digest and c1[4:8] != b"\x00\x00\x00\x00":
                client_digest = find_digest(c1, FP_KEY_PARTIAL)
            if client_digest is not None:
                self.digest_form = True
                self._out += make_digest_packet(self._now_ms, SERVER_VERSION, FMS_KEY_PARTIAL)
                self._out += make_response_packet(client_digest, FMS_KEY)
            else:
                self._out += make_plain_packet(self._now_ms)
                # S2 echoes C1's time and random bytes (time2 = when we read it).
                self._out += c1[:4] + struct.pack(">I", self._now_ms & 0xFFFFFFFF) + c1[8:]
            self.state = State.WAIT_2
        if self.state is State.WAIT_2 and len(self._buf) >= PACKET_SIZE:
            # C2 is not checked: many encoders send an echo that does not match; only its length matters.
            self.leftover = bytes(self._buf[PACKET_SIZE:])
            self._buf.clear()
            self.state = State.DONE


class ClientHandshake:
    """Our side as a client (play, publish, relay). Call `start()` first and send what it returns."""

    def __init__(self, *, now_ms: int = 0, digest: bool = True) -> None:
        self.state = State.WAIT_01
        self._buf = bytearray()
        self._now_ms = now_ms
        self._digest = digest
        self._c1 = b""
        self._c1_digest: bytes | None = None
        self.leftover = b""
        self.server_digest_verified = False

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def start(self) -> bytes:
        if self._digest:
            self._c1 = make_digest_packet(self._now_ms, CLIENT_VERSION, FP_KEY_PARTIAL)
            self._c1_digest = find_digest(self._c1, FP_KEY_PARTIAL)
        else:
            self._c1 = make_plain_packet(self._now_ms)
        return bytes((RTMP_VERSION,)) + self._c1

    def receive_data(self, data: bytes) -> bytes:
        """Returns C2 once S0/S1/S2 are in."""
        if self.state is State.DONE:
            raise HandshakeError("handshake already finished")
        self._buf += data
        if self._buf and self._buf[0] != RTMP_VERSION:
            raise HandshakeError(f"server answered with RTMP version byte {self._buf[0]}")
        if len(self._buf) < 1 + 2 * PACKET_SIZE:
            return b""
        s1 = bytes(self._buf[1 : 1 + PACKET_SIZE])
        s2 = bytes(self._buf[1 + PACKET_SIZE : 1 + 2 * PACKET_SIZE])
        self.leftover = bytes(self._buf[1 + 2 * PACKET_SIZE :])
        self._buf.clear()
        self.state = State.DONE
        server_digest = None
        if self._digest and s1[4:8] != b"\x00\x00\x00\x00":
            server_digest = find_digest(s1, FMS_KEY_PARTIAL)
        if server_digest is not None and self._c1_digest is not None:
            self.server_digest_verified = verify_response_packet(s2, self._c1_digest, FMS_KEY)
            return make_response_packet(server_digest, FP_KEY)
        return s1
