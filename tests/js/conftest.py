"""Fixtures of the npm package tests."""

from __future__ import annotations

import pytest

from conftest import NodeRuntime
from js.packed import PackedClient, packed_client


@pytest.fixture(scope="session")
def packed(node: NodeRuntime, tmp_path_factory: pytest.TempPathFactory) -> PackedClient:
    """``wskit-client`` packed and installed in a Node project (see :class:`PackedClient`)."""
    return packed_client(tmp_path_factory)
