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


class DhtSettings(Section):
    """Mainline DHT node (BEP 5) on serve/origin nodes: trackerless announces and magnet lookups."""

    enabled: bool = True
    dht_port: Port = 6881
    bootstrap_nodes: list[str] = Field(default_factory=list, description="host:port of nodes to join through")
    announce_interval: Seconds = 15 * 60.0
    query_rate: float = Field(20.0, gt=0, le=10_000, description="queries per second accepted from one address")
    query_burst: float = Field(40.0, ge=1, le=100_000)
    read_only: bool = False
    enforce_bep42: bool = False

    @field_validator("bootstrap_nodes")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
        return value


class P2PSettings(Section):
    """BitTorrent distribution of on-demand videos: the seeder, the tracker (HTTP on the front door, UDP)."""

    enabled: bool = True
    bt_port: Port = 6881
    tracker_udp_port: Port = 6969
    http_tracker: bool = True
    udp_tracker: bool = True
    tracker_only_own: bool = Field(True, description="track only the torrents this node made")
    announce_interval: int = Field(1800, ge=10, le=86_400)
    min_announce_interval: int = Field(60, ge=1, le=86_400)
    peer_ttl: Seconds = 3600.0
    max_numwant: int = Field(200, ge=1, le=5000)
    upload_slots: int = Field(8, ge=1, le=1000)
    max_peers_per_torrent: int = Field(60, ge=1, le=10_000)
    piece_length: int | None = Field(None, ge=16 * 1024, le=64 * 1024 * 1024)
    public_url: str | None = Field(None, description="base URL peers reach this node at (web seeds, tracker)")
    web_seeds: bool = True
    hybrid: bool = Field(False, description="make hybrid v1+v2 torrents (BEP 52); peers still talk v1 to the seeder")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


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
    dht: DhtSettings = DhtSettings()
    p2p: P2PSettings = P2PSettings()

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
