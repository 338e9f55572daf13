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


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
               "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4, "TB": 1024**4, "TIB": 1024**4}


def parse_size(value: object) -> object:
    """"512M", "2G", "1048576" -> bytes (binary units); other values pass to validation."""
    if isinstance(value, str):
        text = value.strip().upper().replace(" ", "")
        number = text.rstrip("KMGTIB")
        unit = text[len(number):]
        if number and unit in _SIZE_UNITS:
            try:
                return int(float(number) * _SIZE_UNITS[unit])
            except ValueError:
                return value
    return value


class CdnSettings(Section):
    """The edge cache (hivecast.cdn): storage, eviction, upstream deadlines, registration, routing."""

    cache_dir: Path | None = Field(None, description="cache directory (default: data_dir/cache)")
    cache_size: ByteCount = Field(1024**3, description="disk tier byte budget, e.g. 10G")
    memory_size: ByteCount = Field(64 * 1024**2, description="memory tier byte budget")
    memory_object_max: ByteCount = Field(256 * 1024, description="largest object kept in the memory tier")
    max_object_size: ByteCount = Field(512 * 1024**2, description="larger objects are passed, not stored")
    policy: Literal["lru", "lfu", "ttl", "s3fifo", "sieve"] = "s3fifo"
    workers: int = Field(1, ge=1, le=256, description="edge processes sharing the port (SO_REUSEPORT)")
    worker_index: int = Field(0, ge=0, le=255, description="set by the edge for its worker processes")
    connect_timeout: Seconds = 3.0
    upstream_timeout: Seconds = Field(10.0, description="deadline for the upstream's first byte and body gaps")
    pass_prefixes: list[str] = Field(["/api/", "/ws/", "/cdn/"], description="paths forwarded to the origin uncached")
    surrogate_target: str | None = Field(None, description="our name in targeted Surrogate-Control directives")
    prefetch_segments: int = Field(3, ge=0, le=100, description="newest segments prefetched per new playlist")
    embedded: bool = Field(True, description="serve role: cache /live and /vod in front of the media store")
    embedded_direct: bool = Field(True, description="serve role: files over memory_object_max go straight "
                                                    "from the media store (sendfile) instead of being copied into the cache")
    # registration and routing
    edge_id: str | None = Field(None, description="this edge's id at the origin (default: host:port)")
    public_url: str | None = Field(None, description="URL clients reach this edge at (default from host/port)")
    region: str = "default"
    heartbeat_interval: Seconds = 2.0
    health_interval: Seconds = Field(2.0, description="origin/router health-check period for edges")
    regions: dict[str, str] = Field(default_factory=dict, description="client network (CIDR) -> region")
    dns_ttl: int = Field(10, ge=0, le=3600)
    cluster_key: str | None = Field(None, min_length=16, description="shared secret edges present to the origin")

    @field_validator("cache_size", "memory_size", "memory_object_max", "max_object_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value)


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
    cdn: CdnSettings = CdnSettings.model_validate({})

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
