"""The HTTP front door: httptools parsing, prefix routing, files, upgrades and the ASGI hand-off."""

from hivecast.http.asgi import AsgiHandler, AsgiLifespan
from hivecast.http.channel import RawChannel
from hivecast.http.files import StaticFiles, file_response, media_type
from hivecast.http.headers import Headers
from hivecast.http.message import BodyReader, FileBody, RawResponse, Request, RequestBodyTooLarge, Response
from hivecast.http.router import Router
from hivecast.http.server import Handler, HttpLimits, HttpServer

__all__ = [
    "AsgiHandler",
    "AsgiLifespan",
    "BodyReader",
    "FileBody",
    "Handler",
    "Headers",
    "HttpLimits",
    "HttpServer",
    "RawChannel",
    "RawResponse",
    "Request",
    "RequestBodyTooLarge",
    "Response",
    "Router",
    "StaticFiles",
    "file_response",
    "media_type",
]
