"""Relays: push a live stream to another RTMP server, and pull one from an RTMP URL.

Each relay is a `Reconnecting` (hivecast.net): one task with a reconnect loop and exponential
back-off, and a `status()` dict (state, attempts, reconnects, last error, bytes) for the API and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from hivecast.media import LiveRegistry, Publisher, StreamBusyError, StreamEnded
from hivecast.net import NetError
from hivecast.net.reconnect import Reconnecting
from hivecast.rtmp import amf0
from hivecast.rtmp.chunk import AUDIO, DATA_AMF0, VIDEO, Message
from hivecast.rtmp.client import RtmpClient
from hivecast.rtmp.errors import FlvError, RtmpError
from hivecast.rtmp.mapping import FlvToUnits, UnitsToFlv, metadata_message
from hivecast.rtmp.session import MediaReceived, MetadataReceived

log = logging.getLogger(__name__)


class _Relay(Reconnecting):
    kind = "relay"
    expected = (NetError, RtmpError, OSError, TimeoutError, StreamBusyError)

    def __init__(self, registry: LiveRegistry, name: str, url: str, *, retry_min: float = 1.0,
                 retry_max: float = 30.0) -> None:
        super().__init__(name, url, min_backoff=retry_min, max_backoff=retry_max)
        self.registry = registry


class PushRelay(_Relay):
    """Sends live stream `name` to `url` whenever the stream is live."""

    kind = "push"

    async def wait_ready(self) -> None:
        self.state = "waiting"
        while self.registry.get(self.name) is None:
            await asyncio.sleep(0.25)

    async def attempt(self) -> None:
        reader = self.registry.subscribe(self.name, maxlen=1024)
        stream = reader.stream
        try:
            self.state = "connecting"
            client = await RtmpClient.open(self.url)
            try:
                await client.publish()
                # Read what the target sends (acks, pings, errors) alongside our writes.
                incoming = asyncio.get_running_loop().create_task(client.consume())
                self.running()
                conv = UnitsToFlv(stream.tracks)
                meta = metadata_message(stream.tracks)
                client.session.send(_data_message(client, meta.payload))
                for msg in conv.headers():
                    client.send_media(msg.type_id, msg.timestamp, msg.payload)
                await client.flush()
                while True:
                    try:
                        async with asyncio.timeout(30):
                            au = await reader.get()
                    except StreamEnded:
                        return
                    for msg in conv.convert(au):
                        client.send_media(msg.type_id, msg.timestamp, msg.payload)
                        self.bytes += len(msg.payload)
                    # Drain only when the socket buffer is high, so small messages batch up.
                    out = client.session.data_to_send()
                    if out:
                        client.conn.write(out)
                        if client.conn.transport.get_write_buffer_size() > 256 * 1024:
                            await client.conn.drain()
                    if incoming.done():
                        incoming.result()  # raises what ended the target's side
                        raise RtmpError("target closed the connection")
            finally:
                incoming.cancel()
                await client.close()
        finally:
            reader.close()


def _data_message(client: RtmpClient, payload: bytes) -> Message:
    # "@setDataFrame" is what servers (nginx-rtmp, ffmpeg) expect in front of a publisher's onMetaData.
    values = amf0.decode_all(payload)
    return Message(DATA_AMF0, client.session.stream_id, 0, amf0.encode("@setDataFrame", *values), 5)


class PullSource(_Relay):
    """Plays `url` and publishes it into the registry as `name`."""

    kind = "pull"

    async def attempt(self) -> None:
        self.state = "connecting"
        client = await RtmpClient.open(self.url)
        publisher: Publisher | None = None
        try:
            await client.play()
            ingest = FlvToUnits()
            held: list[tuple[int, int, bytes]] = []
            self.running()
            while True:
                for ev in await client.events(timeout=30):
                    if isinstance(ev, MetadataReceived):
                        ingest.set_metadata(ev.metadata)
                        continue
                    if not isinstance(ev, MediaReceived) or ev.message.type_id not in (AUDIO, VIDEO):
                        continue
                    m = ev.message
                    self.bytes += len(m.payload)
                    try:
                        au = ingest.video(m.timestamp, m.payload) if m.type_id == VIDEO else ingest.audio(
                            m.timestamp, m.payload)
                    except FlvError:
                        continue
                    if publisher is None:
                        held.append((m.type_id, m.timestamp, m.payload))
                        if ingest.ready or len(held) > 300:
                            publisher = self.registry.publish(self.name, ingest.tracks(), source=f"rtmp pull {self.url}")
                            replay = FlvToUnits()
                            replay.set_metadata(ingest.metadata)
                            ingest = replay
                            for t, ts, p in held:
                                with contextlib.suppress(FlvError):
                                    au = ingest.video(ts, p) if t == VIDEO else ingest.audio(ts, p)
                                    if au is not None:
                                        publisher.send(au)
                            held.clear()
                    elif au is not None:
                        if not publisher.active:
                            raise RtmpError("pulled stream was replaced")
                        publisher.send(au)
        finally:
            if publisher is not None:
                publisher.close()
            await client.close()



class Forwarder(_Relay):
    """Plays `source` and publishes the same FLV messages to `url` (the CLI's push and pull)."""

    kind = "forward"

    def __init__(self, source: str, url: str, *, retry_min: float = 1.0, retry_max: float = 30.0,
                 registry: LiveRegistry | None = None) -> None:
        super().__init__(registry or LiveRegistry(), source, url, retry_min=retry_min, retry_max=retry_max)
        self.source = source

    async def attempt(self) -> None:
        self.state = "connecting"
        src = await RtmpClient.open(self.source)
        try:
            await src.play()
            dst = await RtmpClient.open(self.url)
            try:
                await dst.publish()
                incoming = asyncio.get_running_loop().create_task(dst.consume())
                self.running()
                try:
                    while True:
                        for ev in await src.events(timeout=30):
                            if isinstance(ev, MetadataReceived):
                                dst.send_metadata(ev.metadata)
                            elif isinstance(ev, MediaReceived) and ev.message.type_id in (AUDIO, VIDEO):
                                dst.send_media(ev.message.type_id, ev.message.timestamp, ev.message.payload)
                                self.bytes += len(ev.message.payload)
                        await dst.flush()
                        if incoming.done():
                            incoming.result()
                            raise RtmpError("target closed the connection")
                finally:
                    incoming.cancel()
            finally:
                await dst.close()
        finally:
            await src.close()


class RelayManager:
    """Every push relay and pull source of a node: `node.services["rtmp_relays"]`.

    For the API: `list()` gives each relay's status; `add_push(name, url)` / `remove_push(name, url)`
    change a stream's push targets at run time; `add_pull(name, url)` / `remove_pull(name)` the pulls.
    """

    def __init__(self, registry: LiveRegistry, *, retry_min: float = 1.0, retry_max: float = 30.0) -> None:
        self.registry = registry
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._relays: dict[tuple[str, str, str], _Relay] = {}

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        return [r.status() for r in self._relays.values() if name is None or r.name == name]

    def add_push(self, name: str, url: str) -> bool:
        return self._add(("push", name, url), PushRelay(self.registry, name, url, retry_min=self.retry_min,
                                                         retry_max=self.retry_max))

    def add_pull(self, name: str, url: str) -> bool:
        if any(k[0] == "pull" and k[1] == name for k in self._relays):
            return False
        return self._add(("pull", name, url), PullSource(self.registry, name, url, retry_min=self.retry_min,
                                                          retry_max=self.retry_max))

    def _add(self, key: tuple[str, str, str], relay: _Relay) -> bool:
        from hivecast.rtmp.client import parse_url

        parse_url(relay.url)  # ValueError for a URL that is not rtmp:// or rtmps://
        if key in self._relays:
            return False
        self._relays[key] = relay
        relay.start()
        return True

    async def remove_push(self, name: str, url: str) -> bool:
        relay = self._relays.pop(("push", name, url), None)
        if relay is not None:
            await relay.stop()
        return relay is not None

    async def remove_pull(self, name: str) -> bool:
        keys = [k for k in self._relays if k[0] == "pull" and k[1] == name]
        for key in keys:
            await self._relays.pop(key).stop()
        return bool(keys)

    async def stop(self) -> None:
        relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            try:
                await relay.stop()
            except Exception:
                log.exception("stopping %s %s failed", relay.kind, relay.name)
