"""Request and response bodies. Every request model forbids unknown fields and bounds every
string and list, so nothing unbounded or unexpected reaches the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL; the schema says so, validation enforces it

Role = Literal["admin", "streamer", "viewer"]
Scope = Literal["read", "write"]
# Names become URL path segments and directory names: a conservative alphabet, no dots or slashes.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Title = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
Text = Annotated[str, StringConstraints(max_length=5000, pattern=NO_NUL)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256, pattern=NO_NUL)]


def _integral_float(value: Any) -> Any:
    # JSON Schema's "integer" includes 3.0; strict mode would refuse it, so accept it here.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral_float)]
Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL, and no field here has a use for it: refuse it everywhere.
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in items):
            raise ValueError("must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        # SQLite returns naive datetimes; everything stored is UTC, so say so on the wire.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# ---- envelope ----
class Pagination(BaseModel):
    page: int
    size: int
    total: int
    pages: int
    next_cursor: str | None = Field(None, description="videos only: pass as ?cursor= for the next items (keyset)")


class CursorPage(BaseModel):
    size: int
    next_cursor: int | None


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T
    message: str | None = None


class ListEnvelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: list[T]
    message: str | None = None
    pagination: Pagination


class CursorEnvelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: list[T]
    message: str | None = None
    pagination: CursorPage


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorEnvelope(BaseModel):
    success: Literal[False] = False
    error: ErrorInfo


# ---- auth ----
class LoginIn(In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]


class RefreshIn(In):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


class LogoutIn(In):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class Me(BaseModel):
    id: str
    username: str
    role: Role
    via: Literal["token", "api_key"]
    scopes: list[Scope]


# ---- users ----
class UserOut(Out):
    id: str
    username: str
    display_name: str | None
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(In):
    username: Username
    password: Password
    role: Role = "viewer"
    display_name: Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)] | None = None


class UserPut(In):
    display_name: Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)] | None
    role: Role
    disabled: bool
    password: Password | None = None


# In a merge patch `null` removes a member; members that cannot be absent do not admit null
# (the schema says so; SkipJsonSchema keeps null out of it and the handler answers 422).
class UserPatch(In):
    display_name: Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)] | None = None
    role: Role | SkipJsonSchema[None] = None
    disabled: bool | SkipJsonSchema[None] = None
    password: Password | SkipJsonSchema[None] = None


# ---- streams ----
class IngestUrls(BaseModel):
    rtsp: str = Field(description="publish with ?key=STREAM_KEY appended")
    rtmp: str | None = Field(description="null when RTMP ingest is off; publish with ?key=STREAM_KEY appended")


class PlaybackUrls(BaseModel):
    hls: str
    dash: str


class StreamOut(Out):
    id: str
    name: str
    title: str
    description: str | None
    owner_id: str
    state: Literal["live", "offline"]
    viewers: int
    qos: dict[str, Any]
    tracks: list[Any]
    ingest_urls: IngestUrls
    playback_urls: PlaybackUrls
    key_rotated_at: datetime
    created_at: datetime
    updated_at: datetime


class StreamPublic(Out):
    """What a visitor without credentials sees of a live stream: no key, owner or ingest details."""

    id: str
    name: str
    title: str
    description: str | None
    state: Literal["live", "offline"]
    viewers: int
    playback_urls: PlaybackUrls
    created_at: datetime


class StreamWithKey(StreamOut):
    stream_key: str


class StreamKeyOut(BaseModel):
    stream_key: str
    key_rotated_at: datetime


class StreamCreate(In):
    name: Name
    title: Title = ""
    description: Text | None = None
    owner_id: Id | None = Field(None, description="admins only: create on behalf of this user")


class StreamPut(In):
    title: Title
    description: Text | None


class StreamPatch(In):
    title: Title | None = None
    description: Text | None = None


# ---- videos ----
MAX_VIDEO_BYTES = 1024**4  # 1 TiB; `[api] max_upload_bytes` may set a lower limit (then 413)
VideoState = Literal["awaiting_upload", "uploading", "uploaded", "packaging", "ready", "failed"]


class VideoOut(Out):
    id: str
    owner_id: str
    title: str
    description: str | None
    filename: str | None
    state: VideoState
    size: int
    sha256: str | None
    upload_offset: int
    upload_url: str
    renditions: list[str]
    playback_urls: PlaybackUrls | None
    torrent_url: str | None
    magnet: str | None
    created_at: datetime
    updated_at: datetime


class VideoCreate(In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
    description: Text | None = None
    size: JsonInt = Field(ge=1, le=MAX_VIDEO_BYTES, description="total bytes the upload will carry")
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    filename: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.()-]{0,199}$")] | None = None


class VideoPut(In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
    description: Text | None


class VideoPatch(In):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)] | SkipJsonSchema[None] = None
    description: Text | None = None


# ---- comments ----
class CommentOut(Out):
    id: int
    video_id: str
    user_id: str
    body: str
    created_at: datetime


class CommentCreate(In):
    body: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


# ---- edges ----
class EdgeLoad(BaseModel):
    connections: int | float | None = None
    bandwidth_bps: int | float | None = None
    cpu: int | float | None = None


class EdgeOut(BaseModel):
    id: str
    url: str | None
    region: str | None
    healthy: bool
    draining: bool
    load: EdgeLoad
    last_seen: float | str | None


class EdgePatch(In):
    draining: bool


# ---- purges ----
PurgeKind = Literal["url", "prefix", "tag", "prefetch"]
PurgeValue = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=NO_NUL)]


class PurgeCreate(In):
    kind: PurgeKind
    values: list[PurgeValue] = Field(min_length=1, max_length=1000)


class PurgeOut(Out):
    id: str
    kind: PurgeKind
    values: list[str]
    requested_by: str
    state: str
    created_at: datetime


# ---- api keys ----
class ApiKeyOut(Out):
    id: str
    user_id: str
    name: str
    prefix: str
    scopes: list[Scope]
    revoked: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyWithSecret(ApiKeyOut):
    key: str


def _all_scopes() -> list[Scope]:
    return ["read", "write"]


class ApiKeyCreate(In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NO_NUL)]
    scopes: list[Scope] = Field(default_factory=_all_scopes, min_length=1, max_length=2)
    expires_in_days: Annotated[int, Field(ge=1, le=3650), BeforeValidator(_integral_float)] | None = Field(None, description="lifetime; none: no expiry")


class ApiRoot(BaseModel):
    version: str
    role: str | None
