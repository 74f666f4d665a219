"""fleetapp.embedded.free_port: ports for servers a test or the demo starts a moment later."""

from __future__ import annotations

import socket
from pathlib import Path

from fleetapp.embedded import free_port


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    """Two calls never return the same port (a demo once got its broker's port for its API), and no port comes
    from the range outgoing connections take their source ports from."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < low for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # free indeed


def test_a_port_someone_listens_on_is_never_returned() -> None:
    """Listeners on 400 ports of the candidate range: 300 calls would hit one of them ~99.99 % of the time without
    the bind check."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken: list = []
    try:
        for port in range(max(1024, low - 12000), low):
            if len(taken) == 400:
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen()
            taken.append(s)
        listening = {s.getsockname()[1] for s in taken}
        assert len(listening) == 400
        assert not listening & {free_port() for _ in range(300)}
    finally:
        for s in taken:
            s.close()
