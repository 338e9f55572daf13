"""Session descriptions (RFC 8866): parse and serialize what RTSP needs. Sans I/O.

Only the lines RTSP publishers and players use are modelled (v, o, s, c, t, a, m, b, i); the
rest are kept as raw lines so a description survives a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hivecast.rtsp.errors import SdpError

MAX_SDP_BYTES = 64 * 1024
MAX_SDP_LINES = 1000
MAX_MEDIA = 16


@dataclass(slots=True)
class MediaDescription:
    media: str  # "video", "audio", "application"
    port: int
    proto: str  # "RTP/AVP"
    formats: list[str]
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    connection: str | None = None
    bandwidth: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    @property
    def payload_type(self) -> int:
        try:
            return int(self.formats[0])
        except (IndexError, ValueError):
            raise SdpError("media line without a numeric payload type") from None

    def rtpmap(self) -> tuple[str, int, int | None]:
        """(encoding name, clock rate, channels) for the first format."""
        pt = self.payload_type
        for k, v in self.attributes:
            if k == "rtpmap" and v:
                fmt, _, rest = v.partition(" ")
                if fmt.strip() == str(pt):
                    parts = rest.strip().split("/")
                    try:
                        rate = int(parts[1])
                        channels = int(parts[2]) if len(parts) > 2 and parts[2] else None
                    except (IndexError, ValueError):
                        raise SdpError(f"bad rtpmap {v!r}") from None
                    if not 0 < rate <= 10_000_000:
                        raise SdpError("rtpmap clock rate out of range")
                    return parts[0], rate, channels
        static = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 14: ("MPA", 90000, None), 26: ("JPEG", 90000, None),
                  32: ("MPV", 90000, None), 33: ("MP2T", 90000, None)}
        if pt in static:
            return static[pt]
        raise SdpError(f"no rtpmap for payload type {pt}")

    def fmtp(self) -> dict[str, str]:
        pt = str(self.payload_type)
        for k, v in self.attributes:
            if k == "fmtp" and v:
                fmt, _, rest = v.partition(" ")
                if fmt.strip() == pt:
                    params: dict[str, str] = {}
                    for item in rest.split(";"):
                        name, eq, value = item.strip().partition("=")
                        if name:
                            params[name.strip().lower()] = value.strip() if eq else ""
                    return params
        return {}

    def serialize_lines(self) -> list[str]:
        lines = [f"m={self.media} {self.port} {self.proto} {' '.join(self.formats)}"]
        if self.connection:
            lines.append(f"c={self.connection}")
        lines += [f"b={b}" for b in self.bandwidth]
        lines += self.other
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return lines


@dataclass(slots=True)
class SessionDescription:
    origin: str = "- 0 0 IN IP4 127.0.0.1"
    name: str = "hivecast"
    connection: str | None = None
    timing: str = "0 0"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        if isinstance(data, bytes):
            if len(data) > MAX_SDP_BYTES:
                raise SdpError("session description too large")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("session description is not UTF-8") from None
        if len(data) > MAX_SDP_BYTES:
            raise SdpError("session description too large")
        lines = [ln.rstrip("\r") for ln in data.split("\n")]
        lines = [ln for ln in lines if ln.strip()]
        if len(lines) > MAX_SDP_LINES:
            raise SdpError("session description has too many lines")
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("session description must start with v=0")
        sd = cls(origin="", name="", timing="")
        current: MediaDescription | None = None
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(f"bad SDP line {line[:40]!r}")
            kind, value = line[0], line[2:]
            if kind == "m":
                parts = value.split()
                if len(parts) < 4:
                    raise SdpError(f"bad media line {line[:60]!r}")
                port_text = parts[1].split("/")[0]
                if not port_text.isdigit() or int(port_text) > 65535:
                    raise SdpError("bad media port")
                if len(sd.media) >= MAX_MEDIA:
                    raise SdpError("too many media sections")
                current = MediaDescription(parts[0], int(port_text), parts[2], parts[3:])
                sd.media.append(current)
            elif kind == "a":
                name, colon, attr_value = value.partition(":")
                attr = (name, attr_value if colon else None)
                (current.attributes if current else sd.attributes).append(attr)
            elif kind == "c":
                if current:
                    current.connection = value
                else:
                    sd.connection = value
            elif kind == "b" and current:
                current.bandwidth.append(value)
            elif current is not None:
                current.other.append(line)
            elif kind == "o":
                sd.origin = value
            elif kind == "s":
                sd.name = value
            elif kind == "t":
                sd.timing = value
            else:
                sd.other.append(line)
        return sd

    def serialize(self) -> bytes:
        lines = ["v=0", f"o={self.origin}", f"s={self.name or ' '}"]
        if self.connection:
            lines.append(f"c={self.connection}")
        lines.append(f"t={self.timing or '0 0'}")
        lines += self.other
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines += m.serialize_lines()
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def resolve_control(base: str, control: str | None) -> str:
    """Absolute URL of a track from the base URL and its a=control (RFC 2326 C.1.1)."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return base.rstrip("/") + "/" + control.lstrip("/")
