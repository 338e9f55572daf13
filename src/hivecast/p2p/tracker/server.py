"""Tracker adapters: HTTP handlers for the front door's router and a UDP endpoint."""

from __future__ import annotations

import logging
import time

from hivecast.http import Request, Response
from hivecast.net import UdpEndpoint, open_udp
from hivecast.p2p.errors import TrackerError
from hivecast.p2p.tracker import http as wire
from hivecast.p2p.tracker.core import TrackerCore
from hivecast.p2p.tracker.udp import UdpTrackerProtocol

log = logging.getLogger(__name__)

_PLAIN = [("content-type", "text/plain"), ("cache-control", "no-store")]


class HttpTracker:
    """`/announce` and `/scrape`; every refusal is a 200 with a bencoded failure reason (BEP 3)."""

    def __init__(self, core: TrackerCore) -> None:
        self.core = core

    async def announce(self, request: Request) -> Response:
        try:
            req, compact = wire.parse_announce(request.query_string, request.client[0])
            result = self.core.announce(req, time.monotonic())
            body = wire.announce_response(result, compact=compact)
        except TrackerError as exc:
            body = wire.failure(str(exc))
        return Response(200, list(_PLAIN), body)

    async def scrape(self, request: Request) -> Response:
        try:
            body = wire.scrape_response(self.core.scrape(wire.parse_scrape(request.query_string), time.monotonic()))
        except TrackerError as exc:
            body = wire.failure(str(exc))
        return Response(200, list(_PLAIN), body)


class UdpTracker:
    def __init__(self, core: TrackerCore, host: str, port: int) -> None:
        self.protocol = UdpTrackerProtocol(core)
        self.host = host
        self.requested_port = port
        self.endpoint: UdpEndpoint | None = None

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.protocol.handle(data, (addr[0], addr[1]), time.monotonic())
        if reply is not None and self.endpoint is not None:
            try:
                self.endpoint.send(reply, addr)
            except Exception as exc:  # a full socket buffer drops one reply, as UDP would
                log.debug("udp tracker: %s", exc)

    async def start(self) -> None:
        self.endpoint = await open_udp(self.host, self.requested_port, on_datagram=self._datagram)

    @property
    def port(self) -> int:
        assert self.endpoint is not None
        return self.endpoint.port

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
            self.endpoint = None
