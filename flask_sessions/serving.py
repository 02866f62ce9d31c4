"""waitress as the CLI serves with it (``serve`` and ``host``), tuned for large bodies.

Session files (issue 19) move bodies of up to hundreds of MB. waitress's defaults read a
request body 8 KiB per ``recv()`` and write each piece to its spool file; and each
``send()`` first reads up to the socket's whole send buffer (about 4 MB on loopback) from
the answer's buffer or file, then seeks back over what the client did not take, so a slow
reader makes it copy the same bytes many times. Measured on 100 MB through curl
(``make bench ARGS=--files``): the server's CPU per upload fell from 0.85 s to 0.34 s, per
download from 0.14 s to 0.07 s. Imported only by the commands that serve (``mcp`` does not
load waitress).
"""

from __future__ import annotations

import socket
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

RECV_BYTES = 256 << 10  # bytes per recv() of a request (waitress's default: 8 KiB)
SEND_BYTES = 1 << 20  # most bytes read for one send() (waitress: SO_SNDBUF, ~4 MB)
OUTBUF_BYTES = 4 << 20  # an answer's bytes waiting for a slow client before the app waits
# (waitress: 16 MB); kept in memory (waitress spills them to a temporary file past 1 MB)


class _Channel(HTTPChannel):
    """waitress's channel, with each send() reading at most :data:`SEND_BYTES`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendbuf_len = min(self.sendbuf_len, SEND_BYTES)


def serve(app: Any, *, sockets: list[socket.socket], threads: int, ident: str) -> None:
    """``waitress.serve`` of ``app`` on the bound ``sockets`` (one), tuned as above."""
    server = create_server(
        app,
        sockets=sockets,
        threads=threads,
        ident=ident,
        recv_bytes=RECV_BYTES,
        outbuf_overflow=2 * OUTBUF_BYTES,  # the watermark plus the app's last piece
        outbuf_high_watermark=OUTBUF_BYTES,
    )
    assert isinstance(server, BaseWSGIServer)  # one socket: one server
    server.channel_class = _Channel
    server.print_listen("Serving on http://{}:{}")
    server.run()
