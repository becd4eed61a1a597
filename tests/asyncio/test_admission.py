"""wskit.asyncio.admission in memory: the server-wide limits (the attack suite uses sockets)."""

from __future__ import annotations

import resource

import pytest

from wskit.asyncio.admission import DESCRIPTOR_HEADROOM, Admission, default_max_connections


def status_and_body(admission: Admission, address: str | None) -> tuple[int, bytes] | None:
    refusal = admission.admit(address)
    if refusal is None:
        return None
    assert refusal.wire.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert refusal.wire.endswith(refusal.response.body)
    return refusal.response.status, refusal.response.body


def test_no_limits_admits_everything() -> None:
    admission = Admission()
    for _ in range(1000):
        assert admission.admit("10.0.0.1") is None
    assert admission.open == 1000
    assert admission.held_by("10.0.0.1") == 0  # nothing is counted per address without a limit


def test_max_connections_counts_until_release() -> None:
    admission = Admission(max_connections=2)
    assert admission.admit("10.0.0.1") is None
    assert admission.admit(None) is None
    refused = status_and_body(admission, "10.0.0.2")
    assert refused == (503, b"Too many connections: the server is at its limit. Try again later.\n")
    assert admission.counters.refused_max_connections == 1
    assert admission.open == 2
    admission.release(None)
    assert admission.admit("10.0.0.2") is None


def test_per_ip_limit_and_its_table_empties() -> None:
    admission = Admission(max_connections_per_ip=2)
    for _ in range(2):
        assert admission.admit("10.0.0.1") is None
    refused = status_and_body(admission, "10.0.0.1")
    assert refused is not None and b"from your address" in refused[1]
    assert admission.admit("10.0.0.2") is None
    assert admission.admit(None) is None  # a Unix socket: no address to count
    assert admission.counters.refused_max_connections_per_ip == 1
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2", None):
        admission.release(address)
    assert admission.open == 0
    # Addresses whose connections are gone are forgotten: the table stays small.
    assert admission._per_address == {}


def test_handshake_rate_is_per_address_and_reports_retry_after() -> None:
    admission = Admission(handshake_rate=0.25, handshake_burst=2)
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is None
    refusal = admission.admit("10.0.0.1")
    assert refusal is not None and refusal.limit == "handshake_rate"
    assert refusal.response.headers["Retry-After"] == "4"
    assert admission.admit("10.0.0.2") is None
    assert admission.counters.refused_handshake_rate == 1
    assert admission.open == 3


def test_a_flooding_address_spends_its_tokens_even_when_the_server_is_full() -> None:
    admission = Admission(max_connections=1, handshake_rate=0.01, handshake_burst=2)
    assert admission.admit("10.0.0.9") is None
    assert admission.admit("10.0.0.1").limit == "max_connections"  # type: ignore[union-attr]
    assert admission.admit("10.0.0.1").limit == "max_connections"  # type: ignore[union-attr]
    assert admission.admit("10.0.0.1").limit == "handshake_rate"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["max_connections", "max_connections_per_ip"])
def test_limits_below_one_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Admission(**{name: 0})


def test_default_max_connections_leaves_descriptors_free() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    default = default_max_connections()
    if soft == resource.RLIM_INFINITY:
        assert default is None
    else:
        assert default is not None
        assert soft - default >= min(soft - 1, DESCRIPTOR_HEADROOM)
        assert soft - default >= soft // 10
