"""RTMP and Enhanced RTMP: sans-I/O cores (handshake, chunk stream, AMF, commands, FLV) and asyncio adapters."""
