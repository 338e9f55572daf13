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


class PackagingSettings(Section):
    """HLS/DASH packaging (hivecast.media.packaging): on demand and live."""

    segment_seconds: float = Field(4.0, ge=1.0, le=10.0, description="target segment duration")
    workers: int = Field(1, ge=1, le=64, description="on-demand packaging worker processes")
    ladder: list[str] = Field(default_factory=list, description='on-demand ladder rungs, e.g. ["720p", "480p"]')
    live_ladder: list[str] = Field(default_factory=list, description="live rungs transcoded below the source")
    live: bool = Field(True, description="package every live stream to /live/NAME/")
    live_window: int = Field(6, ge=3, le=1000, description="segments listed in a live playlist")
    live_retention: int = Field(12, ge=3, le=10000, description="segments kept on disk per live rendition")
    low_latency: bool = Field(True, description="LL-HLS partial segments and blocking reload")
    part_seconds: float = Field(0.5, ge=0.1, le=2.0, description="LL-HLS part target")
    blocking_timeout: float = Field(6.0, gt=0, le=30, description="longest wait of a blocking playlist reload")


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
    # cooperative caching: the edges of one region on a Chord ring (seeds only, no directory)
    ring: bool = Field(False, description="join the region's Chord ring: a miss asks the key's owner edge first")
    ring_port: int = Field(0, ge=0, le=65535, description="UDP port of this edge's ring node (0: any free port)")
    ring_seeds: list[str] = Field(default_factory=list, description="host:port of ring members to join through")
    ring_timeout: Seconds = Field(2.0, description="deadline for the owner edge's response head, then the origin")
    ring_lookup_timeout: Seconds = Field(1.0, description="deadline for finding a key's owner on the ring")

    @field_validator("cache_size", "memory_size", "memory_object_max", "max_object_size", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value)

    @field_validator("ring_seeds")
    @classmethod
    def _seeds(cls, value: list[str]) -> list[str]:
        for seed in value:
            host, sep, port = seed.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"ring seed {seed!r} is not host:port")
        return value


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


class Settings(Section):
    role: Role = "serve"
    host: str = Field("0.0.0.0", min_length=1, description="address every listener binds to")
    http_port: Port = 8080
    http_tls_cert: Path | None = Field(None, description="PEM certificate (chain): http_port speaks HTTPS (and wss)")
    http_tls_key: Path | None = Field(None, description="PEM private key of http_tls_cert (unencrypted)")
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
    packaging: PackagingSettings = PackagingSettings()
    rtmp: RtmpSettings = RtmpSettings()
    rtsp: RtspSettings = RtspSettings()
    cdn: CdnSettings = CdnSettings.model_validate({})
    ws: WsSettings = WsSettings()
    api: ApiSettings = ApiSettings.model_validate({})
    p2p: P2PSettings = P2PSettings()
    dht: DhtSettings = DhtSettings()

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
