"""The composition root: builds a node in one role (serve, origin, edge) from settings and runs it."""

from hivecast.node.node import Component, Node, StartupError

__all__ = ["Component", "Node", "StartupError"]
