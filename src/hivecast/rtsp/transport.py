"""The RTSP Transport header (RFC 2326 section 12.39). Sans I/O."""

from __future__ import annotations

from dataclasses import dataclass

from hivecast.rtsp.errors import UnsupportedTransport
from hivecast.rtsp.message import parse_header_params

MAX_ALTERNATIVES = 8


@dataclass(slots=True)
class TransportSpec:
    protocol: str  # "RTP/AVP" (UDP) or "RTP/AVP/TCP"
    unicast: bool = True
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None
    mode: str | None = None  # "record" or "play"
    ssrc: int | None = None
    destination: str | None = None

    @property
    def tcp(self) -> bool:
        return self.protocol.upper() == "RTP/AVP/TCP"

    def serialize(self) -> str:
        parts = [self.protocol, "unicast" if self.unicast else "multicast"]
        if self.destination:
            parts.append(f"destination={self.destination}")
        if self.client_port:
            parts.append(f"client_port={self.client_port[0]}-{self.client_port[1]}")
        if self.server_port:
            parts.append(f"server_port={self.server_port[0]}-{self.server_port[1]}")
        if self.interleaved:
            parts.append(f"interleaved={self.interleaved[0]}-{self.interleaved[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode:
            parts.append(f"mode={self.mode}")
        return ";".join(parts)


def _pair(value: str, limit: int) -> tuple[int, int]:
    a, dash, b = value.partition("-")
    if not a.strip().isdigit() or (dash and not b.strip().isdigit()):
        raise UnsupportedTransport(f"bad port pair {value[:20]!r}")
    first = int(a)
    second = int(b) if dash else first + 1
    if not (0 <= first <= limit and 0 <= second <= limit):
        raise UnsupportedTransport("port or channel out of range")
    return first, second


def parse_transport(header: str) -> list[TransportSpec]:
    """Every alternative the client offers, in order of preference."""
    out: list[TransportSpec] = []
    for alt in header.split(",")[:MAX_ALTERNATIVES]:
        alt = alt.strip()
        if not alt:
            continue
        proto, params = parse_header_params(alt)
        proto = proto.upper()
        if proto == "RTP/AVP/UDP":
            proto = "RTP/AVP"
        if proto not in ("RTP/AVP", "RTP/AVP/TCP"):
            continue
        spec = TransportSpec(proto, unicast="multicast" not in params)
        if "client_port" in params:
            spec.client_port = _pair(params["client_port"], 65535)
        if "server_port" in params:
            spec.server_port = _pair(params["server_port"], 65535)
        if "interleaved" in params:
            spec.interleaved = _pair(params["interleaved"], 255)
        if "mode" in params:
            spec.mode = params["mode"].strip('"').lower()
        if "destination" in params:
            spec.destination = params["destination"]
        if params.get("ssrc"):
            try:
                spec.ssrc = int(params["ssrc"], 16) & 0xFFFFFFFF
            except ValueError:
                pass
        out.append(spec)
    if not out:
        raise UnsupportedTransport("no supported transport offered (RTP/AVP or RTP/AVP/TCP)")
    return out
