"""connectors/sockwait.py: waiting on a socket whatever its descriptor number."""

from __future__ import annotations

import socket

from connectors.sockwait import wait_socket
from tests.highfds import FD_SETSIZE, descriptors_past_select


def test_a_socket_past_descriptor_1023_is_waited_on() -> None:
    with descriptors_past_select():
        a, b = socket.socketpair()
        try:
            assert a.fileno() >= FD_SETSIZE
            assert not wait_socket(a, 0.05)  # nothing sent: not readable, no error
            assert wait_socket(a, 0, read=False, write=True)
            b.sendall(b"x")
            assert wait_socket(a, 1.0)
            assert a.recv(1) == b"x"
        finally:
            a.close()
            b.close()
