"""`hivecast stream|video|key|user ...`: the common operations over the REST API, as tables.

They talk HTTP to `--api URL` (env HC_API, default http://127.0.0.1:8080) with an API key
(`--key`, env HC_API_KEY) or an access token (`--token`, env HC_TOKEN). The one exception is
`hivecast user create --local`, which writes the first admin straight into the node's database.
(HC_ rather than HIVECAST_: HIVECAST_* variables are node settings and unknown ones are refused.)"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import hashlib
import os
import ssl
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

CHUNK = 8 * 1024 * 1024
console = Console()
err = Console(stderr=True)


class CliError(Exception):
    pass


def _client(args: argparse.Namespace) -> httpx.Client:
    headers: dict[str, str] = {}
    key = args.key or os.environ.get("HC_API_KEY")
    token = args.token or os.environ.get("HC_TOKEN")
    if key:
        headers["x-api-key"] = key
    elif token:
        headers["authorization"] = f"Bearer {token}"
    base = (args.api or os.environ.get("HC_API") or "http://127.0.0.1:8080").rstrip("/")
    # A node with its own (e.g. self-signed) certificate: trust that PEM file for https:// URLs.
    cacert = getattr(args, "cacert", None) or os.environ.get("HC_CACERT")
    verify: ssl.SSLContext | bool = True
    if cacert:
        try:
            verify = ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            raise SystemExit(f"hivecast: cannot use {cacert} as a trusted certificate: {exc}") from None
    return httpx.Client(base_url=base, headers=headers, timeout=60, verify=verify)


def _check(r: httpx.Response) -> Any:
    try:
        body = r.json()
    except ValueError:
        raise CliError(f"HTTP {r.status_code} from the API (not JSON)") from None
    if not body.get("success", False):
        error = body.get("error", {})
        details = "; ".join(f"{d['field']}: {d['message']}" for d in error.get("details", []))
        raise CliError(f"{r.status_code} {error.get('code', '')}: {error.get('message', '')}"
                       + (f" ({details})" if details else ""))
    return body


def _table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def _run(fn: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            fn(args)
            return 0
        except CliError as exc:
            err.print(f"[red]error:[/red] {exc}")
            return 1
        except httpx.HTTPError as exc:
            err.print(f"[red]error:[/red] cannot reach the API: {exc}")
            return 1
    return wrapper


# ---- streams ----
def stream_create(args: argparse.Namespace) -> None:
    with _client(args) as c:
        data = _check(c.post("/api/v1/streams", json={"name": args.name, "title": args.title or ""}))["data"]
    _table([data], ["id", "name", "title", "state"], title="stream created")
    console.print(f"stream key: [bold]{data['stream_key']}[/bold] (shown once)")
    console.print(f"publish to: {data['ingest_urls']['rtsp']}  watch: {data['playback_urls']['hls']}")


def stream_list(args: argparse.Namespace) -> None:
    with _client(args) as c:
        body = _check(c.get("/api/v1/streams", params={"page": args.page, "size": args.size}))
    rows = [{**s, "rtsp": s["ingest_urls"]["rtsp"]} for s in body["data"]]
    p = body["pagination"]
    _table(rows, ["id", "name", "title", "state", "viewers", "rtsp"],
           title=f"streams (page {p['page']}/{max(p['pages'], 1)}, {p['total']} total)")


def stream_rotate(args: argparse.Namespace) -> None:
    with _client(args) as c:
        streams = _check(c.get("/api/v1/streams", params={"name": args.name}))["data"]
        if not streams:
            raise CliError(f"no stream named {args.name}")
        data = _check(c.post(f"/api/v1/streams/{streams[0]['id']}/key"))["data"]
    console.print(f"new stream key: [bold]{data['stream_key']}[/bold]")


# ---- videos ----
def _sha256(path: Path, progress: Progress) -> str:
    h = hashlib.sha256()
    task = progress.add_task("hashing", total=path.stat().st_size)
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            progress.advance(task, len(block))
    return h.hexdigest()


def video_upload(args: argparse.Namespace) -> None:
    path: Path = args.file
    if not path.is_file():
        raise CliError(f"{path} is not a file")
    size = path.stat().st_size
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with _client(args) as c, Progress(*columns, console=err) as progress:
        digest = _sha256(path, progress)
        if args.resume:
            video = _check(c.get(f"/api/v1/videos/{args.resume}"))["data"]
        else:
            safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in path.name)[:200].lstrip("._-")
            video = _check(c.post("/api/v1/videos", json={
                "title": args.title or path.stem[:200] or "video", "size": size, "sha256": digest,
                "filename": safe or None}))["data"]
        url = video["upload_url"]
        offset = int(c.head(url).headers.get("upload-offset", "0"))
        task = progress.add_task("uploading", total=size, completed=offset)
        with path.open("rb") as fh:
            while offset < size:
                fh.seek(offset)
                chunk = fh.read(min(CHUNK, size - offset))
                checksum = "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode()
                r = c.patch(url, content=chunk, headers={
                    "content-type": "application/offset+octet-stream", "tus-resumable": "1.0.0",
                    "upload-offset": str(offset), "upload-checksum": checksum})
                if r.status_code != 204:
                    _check(r)
                offset = int(r.headers["upload-offset"])
                progress.update(task, completed=offset)
        video = _check(c.get(f"/api/v1/videos/{video['id']}"))["data"]
    _table([video], ["id", "title", "state", "size", "sha256"], title="video uploaded")


def video_list(args: argparse.Namespace) -> None:
    with _client(args) as c:
        body = _check(c.get("/api/v1/videos", params={"page": args.page, "size": args.size}))
    _table(body["data"], ["id", "title", "state", "size", "upload_offset"], title="videos")


# ---- API keys ----
def key_create(args: argparse.Namespace) -> None:
    scopes = ["read"] if args.read_only else ["read", "write"]
    with _client(args) as c:
        data = _check(c.post("/api/v1/api-keys", json={"name": args.name, "scopes": scopes}))["data"]
    _table([data], ["id", "name", "prefix", "scopes"], title="API key created")
    console.print(f"key: [bold]{data['key']}[/bold] (shown once; use with --key or HC_API_KEY)")


def key_list(args: argparse.Namespace) -> None:
    with _client(args) as c:
        body = _check(c.get("/api/v1/api-keys"))
    _table(body["data"], ["id", "name", "prefix", "scopes", "revoked", "last_used_at"], title="API keys")


def key_revoke(args: argparse.Namespace) -> None:
    with _client(args) as c:
        _check(c.post(f"/api/v1/api-keys/{args.id}/revoke"))
    console.print("revoked")


# ---- users ----
def user_create(args: argparse.Namespace) -> None:
    role = "admin" if args.admin else args.role
    password = args.password or os.environ.get("HC_PASSWORD") or getpass.getpass("password: ")
    if args.local:
        asyncio.run(_create_local(args, role, password))
        console.print(f"created {role} {args.username} in the local database")
        return
    with _client(args) as c:
        data = _check(c.post("/api/v1/users", json={"username": args.username, "password": password,
                                                    "role": role}))["data"]
    _table([data], ["id", "username", "role"], title="user created")


async def _create_local(args: argparse.Namespace, role: str, password: str) -> None:
    from sqlalchemy import select

    from hivecast.api.passwords import hash_password
    from hivecast.config import load_settings
    from hivecast.store import User, open_store

    flags: dict[str, Any] = {}
    if args.data_dir is not None:
        flags["data_dir"] = args.data_dir
    if args.database_url:
        flags["database_url"] = args.database_url
    settings = load_settings(config_file=args.config, flags=flags)
    store = await open_store(settings.effective_database_url)
    try:
        async with store.session() as session:
            if (await session.execute(select(User.id).where(User.username == args.username))).first():
                raise CliError(f"user {args.username} already exists")
            session.add(User(username=args.username, password_hash=await hash_password(password), role=role,
                             disabled=False))
            await session.commit()
    finally:
        await store.close()


def _api_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", metavar="URL", help="API base URL (env HC_API; default http://127.0.0.1:8080)")
    p.add_argument("--key", metavar="KEY", help="API key (env HC_API_KEY)")
    p.add_argument("--token", metavar="JWT", help="access token (env HC_TOKEN)")
    p.add_argument("--cacert", metavar="PEM", help="CA or self-signed certificate to trust for https:// (env HC_CACERT)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stream = sub.add_parser("stream", help="manage live streams").add_subparsers(dest="stream_cmd", metavar="CMD")
    p = stream.add_parser("create", help="create a stream and print its stream key")
    p.add_argument("name")
    p.add_argument("--title")
    _api_flags(p)
    p.set_defaults(func=_run(stream_create))
    p = stream.add_parser("list", help="list streams")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--size", type=int, default=20)
    _api_flags(p)
    p.set_defaults(func=_run(stream_list))
    p = stream.add_parser("rotate-key", help="rotate a stream's key")
    p.add_argument("name")
    _api_flags(p)
    p.set_defaults(func=_run(stream_rotate))

    video = sub.add_parser("video", help="manage on-demand videos").add_subparsers(dest="video_cmd", metavar="CMD")
    p = video.add_parser("upload", help="upload a file (resumable, with a progress bar)")
    p.add_argument("file", type=Path)
    p.add_argument("--title")
    p.add_argument("--resume", metavar="VIDEO_ID", help="continue an interrupted upload")
    _api_flags(p)
    p.set_defaults(func=_run(video_upload))
    p = video.add_parser("list", help="list videos")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--size", type=int, default=20)
    _api_flags(p)
    p.set_defaults(func=_run(video_list))

    key = sub.add_parser("key", help="manage API keys").add_subparsers(dest="key_cmd", metavar="CMD")
    p = key.add_parser("create", help="create an API key (printed once)")
    p.add_argument("name", nargs="?", default="cli")
    p.add_argument("--read-only", action="store_true")
    _api_flags(p)
    p.set_defaults(func=_run(key_create))
    p = key.add_parser("list", help="list API keys")
    _api_flags(p)
    p.set_defaults(func=_run(key_list))
    p = key.add_parser("revoke", help="revoke an API key")
    p.add_argument("id")
    _api_flags(p)
    p.set_defaults(func=_run(key_revoke))

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_cmd", metavar="CMD")
    p = user.add_parser("create", help="create a user (over the API, or --local into the node's database)")
    p.add_argument("username")
    p.add_argument("--role", choices=["admin", "streamer", "viewer"], default="viewer")
    p.add_argument("--admin", action="store_true", help="same as --role admin")
    p.add_argument("--password", help="(env HC_PASSWORD; prompted when absent)")
    p.add_argument("--local", action="store_true", help="write to the local database (bootstrap the first admin)")
    p.add_argument("--data-dir", type=Path, help="with --local: the node's data directory")
    p.add_argument("--database-url", help="with --local: the node's database URL")
    p.add_argument("--config", type=Path, help="with --local: the node's TOML settings")
    _api_flags(p)
    p.set_defaults(func=_run(user_create))


