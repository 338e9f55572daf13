"""The settings model. Every listening address, limit and path is here, validated once at start.

Later capabilities add their own section models (like `LimitsSettings`) and hang them on `Settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hivecast.net.limits import ConnectionLimits

Role = Literal["serve", "origin", "edge"]
Port = Annotated[int, Field(ge=0, le=65535, description="TCP/UDP port; 0 picks a free one")]
Seconds = Annotated[float, Field(gt=0, le=86_400)]
ByteCount = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class LimitsSettings(Section):
    """Per-connection bounds shared by the HTTP front door and the TCP servers."""

    max_connections: int = Field(10_000, ge=1, le=1_000_000)
    idle_timeout: Seconds = 60.0
    header_timeout: Seconds = 10.0
    max_header_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_headers: int = Field(100, ge=8, le=10_000)
    max_body_bytes: ByteCount = 64 * 1024 * 1024
    read_buffer: int = Field(256 * 1024, ge=1024)
    write_buffer_high: int = Field(1024 * 1024, ge=1024)
    write_buffer_max: int = Field(8 * 1024 * 1024, ge=1024)
    write_timeout: Seconds = 30.0
    shutdown_grace: Seconds = 1.5

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            max_connections=self.max_connections,
            idle_timeout=self.idle_timeout,
            read_buffer=self.read_buffer,
            write_buffer_high=self.write_buffer_high,
            write_buffer_max=max(self.write_buffer_max, self.write_buffer_high),
            write_timeout=self.write_timeout,
        )


class AuthSettings(Section):
    """Signing secret for access tokens; generated into the data dir when not set (set it on every node of a cluster)."""

    jwt_secret: str | None = Field(None, min_length=32)
    access_token_ttl: Seconds = 900.0
    refresh_token_ttl: float = Field(30 * 86_400.0, gt=0)


class RtmpSettings(Section):
    """RTMP ingest and playback, HTTP-FLV, push relays (hivecast.rtmp)."""

    enabled: bool = True
    port: Port = 1935  # 0 picks a free one; the bound port is node.services["rtmp_port"]
    app: str = Field("live", min_length=1)  # the application publishers and players connect to
    handshake_timeout: Seconds = 10.0
    idle_timeout: Seconds = 30.0  # a publisher or idle connection sending nothing this long is cut off
    play_wait: float = Field(5.0, ge=0, le=600)  # a player may wait this long for a stream to go live
    chunk_size: int = Field(4096, ge=128, le=65536)  # our outgoing chunk size
    max_chunk_size: int = Field(1 << 20, ge=128)  # largest chunk size a peer may declare
    max_message_size: int = Field(8 << 20, ge=1024, le=(1 << 24) - 1)
    max_streams_per_connection: int = Field(8, ge=1, le=1024)
    batch_ms: float = Field(20.0, ge=0, le=1000)  # write batching: the most latency it may add
    reader_buffer_bytes: int = Field(4 << 20, ge=64 * 1024)  # unsent bytes per reader before it drops GOPs
    write_timeout: Seconds = 15.0  # a reader that cannot take data this long is closed
    publish_keys: dict[str, str] = Field(default_factory=dict)  # stream name (or "*") -> key, without an authorizer
    push: dict[str, list[str]] = Field(default_factory=dict)  # stream name -> rtmp:// targets to push to
    pull: dict[str, str] = Field(default_factory=dict)  # stream name -> rtmp:// URL to pull from
    relay_retry_min: Seconds = 1.0
    relay_retry_max: Seconds = 30.0
    tls_port: Port = 1936  # RTMPS ingest and playback, only when tls_cert and tls_key are set
    tls_cert: Path | None = None
    tls_key: Path | None = None


class RtspSettings(Section):
    """RTSP ingest and relay (hivecast.rtsp): ports, timeouts, per-reader bounds, publish keys, pulls."""

    rtp_port: Port = 0  # UDP port for RTP (RTCP on rtp_port + 1); 0 picks a free even/odd pair
    session_timeout: Seconds = 60.0  # a session with no request, RTP or RTCP for this long is closed
    request_timeout: Seconds = 10.0  # a connection without a session must send a request this often
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_sessions: int = Field(default=10_000, ge=1)
    reader_buffer_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)  # unsent bytes per reader before dropping
    write_timeout: Seconds = 10.0  # a reader over its buffer for this long is closed
    rtcp_interval: Seconds = 1.0
    mtu: int = Field(default=1200, ge=200, le=65000)
    replace_publisher: bool = False  # a second publisher replaces the first instead of being refused
    publish_keys: dict[str, str] = Field(default_factory=dict)  # stream name (or "*") -> key
    pull: dict[str, str] = Field(default_factory=dict)  # stream name -> rtsp:// URL to pull ("#udp": over UDP)
    push: dict[str, str] = Field(default_factory=dict)  # local stream name -> rtsp:// URL to publish it to


class Settings(Section):
    role: Role = "serve"
    host: str = Field("0.0.0.0", min_length=1, description="address every listener binds to")
    http_port: Port = 8080
    rtsp_port: Port = 8554
    data_dir: Path = Path("hivecast-data")
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in data_dir")
    redis_url: str | None = Field(None, description="redis://host:port/db for cross-node events")
    origin_url: str | None = Field(None, description="edge role: the origin it caches")
    parent_url: str | None = Field(None, description="edge role: a parent (shield) cache in front of the origin")
    open_publish: bool = False
    demo: bool = False
    limits: LimitsSettings = LimitsSettings()
    auth: AuthSettings = AuthSettings()
    rtmp: RtmpSettings = RtmpSettings()
    rtsp: RtspSettings = RtspSettings()

    @field_validator("origin_url", "parent_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'hivecast.db').resolve()}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
