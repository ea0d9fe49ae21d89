"""Free loopback ports for the servers the tests start.

A port is free when nothing listens on it at the moment it is picked; a server started a
little later may still lose it. Handing out each port at most once per test run removes the
collisions between the test's own servers (five picked before the first one starts).
"""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
_handed_out: set[int] = set()


def free_port(*, with_bus: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on and that this run has not handed out
    before (and, for a Redis Cluster node, whose bus port ``port + 10000`` is free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port in _handed_out or (with_bus and not (port + 10000 < 65536 and _is_free(port + 10000))):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True
