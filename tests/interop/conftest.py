"""Fixtures of the interop tests (see :mod:`interop.support`)."""

from interop.support import node_peer

__all__ = ["node_peer"]
