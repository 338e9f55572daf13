"""Connection limits, named once and passed in, so every server enforces the same bounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 10_000
    # Seconds a connection may sit without any byte in either direction before we close it.
    idle_timeout: float = 60.0
    # Bytes we buffer from a peer before we stop reading from its socket (back-pressure on it).
    read_buffer: int = 256 * 1024
    # Transport write-buffer watermark: above it, writers wait in drain().
    write_buffer_high: int = 1024 * 1024
    # Hard cap on bytes queued for a peer; a slow reader over it is dropped, never buffered without limit.
    write_buffer_max: int = 8 * 1024 * 1024
    # Seconds a drain() may wait for a slow reader before the connection is dropped.
    write_timeout: float = 30.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in ("idle_timeout", "write_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.write_buffer_max < self.write_buffer_high:
            raise ValueError("write_buffer_max must be at least write_buffer_high")
        if self.read_buffer < 1024:
            raise ValueError("read_buffer must be at least 1024 bytes")
