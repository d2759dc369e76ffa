"""Development services keep their ports across a crash, so running processes reconnect."""

from __future__ import annotations

import socket

from scripts import devservices


def test_a_port_left_in_time_wait_by_a_crashed_server_is_reused():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    server.close()
    client.close()
    assert devservices._free_port(port) == port


def test_a_port_really_taken_moves_only_after_waiting(capsys):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        assert devservices._free_port(port, wait=0.3) != port
    finally:
        holder.close()
    assert "is taken" in capsys.readouterr().err
