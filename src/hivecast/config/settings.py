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


class WsSettings(Section):
    """WebSocket endpoints (`/ws/...`) and the real-time layer (chat, danmaku, presence, events)."""

    echo: bool = Field(False, description="expose /ws/echo (conformance and benchmarks)")
    max_message_size: ByteCount = 16 * 1024 * 1024
    max_queue: int = Field(64, ge=1, le=100_000)
    write_limit: ByteCount = 4 * 1024 * 1024
    write_timeout: Seconds = 30.0
    ping_interval: float | None = Field(20.0, gt=0)
    ping_timeout: float | None = Field(20.0, gt=0)
    idle_timeout: float | None = Field(None, gt=0)
    close_timeout: Seconds = 5.0
    deflate: bool = True
    compress_min_size: int = Field(64, ge=0)
    compress_level: int = Field(1, ge=0, le=9, description="zlib level for permessage-deflate")
    allowed_origins: list[str] = Field(default_factory=list, description="empty: any Origin")
    anonymous_read: bool = Field(True, description="realtime: viewers without a token may read rooms")
    chat_max_length: int = Field(500, ge=1, le=100_000)
    chat_max_frame: ByteCount = 16 * 1024
    chat_rate_count: int = Field(5, ge=1)
    chat_rate_window: Seconds = 10.0
    history_size: int = Field(50, ge=0, le=10_000)


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
    ws: WsSettings = WsSettings()

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
