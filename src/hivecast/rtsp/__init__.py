"""RTSP 1.0 (RFC 2326) with SDP (RFC 8866): sans-I/O messages and sessions, asyncio server and client."""
