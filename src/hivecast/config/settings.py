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


class ApiSettings(Section):
    """The REST management API: CORS, rate limits, body and upload limits, the first admin."""

    cors_origins: tuple[str, ...] = Field((), description="origins allowed by CORS (exact, e.g. https://app.example)")
    rate_limit: int = Field(600, ge=1, description="requests per rate_window for each API key or user")
    rate_limit_ip: int = Field(300, ge=1, description="requests per rate_window for each unauthenticated client IP")
    rate_limit_login: int = Field(20, ge=1, description="login attempts per rate_window for each client IP")
    rate_window: Seconds = 60.0
    max_json_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    upload_dir: Path | None = Field(None, description="where uploads land; default DATA_DIR/uploads")
    max_upload_bytes: int = Field(1024**4, ge=1, description="largest video accepted (the schema caps it at 1 TiB)")
    upload_chunk_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest body of one upload PATCH")
    admin_username: str | None = Field(None, min_length=1, max_length=64, description="bootstrap admin, created at start when missing")
    admin_password: str | None = Field(None, min_length=8, max_length=1024)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: comma-separated
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value


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
    api: ApiSettings = ApiSettings.model_validate({})

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
