"""Running the application: the socket bound here (so that a port in use is a plain error and port 0
picks a free one, printed before the first request), uvicorn serving it, and the signal that
stopped it remembered for the exit code (130 for Ctrl-C, 143 for SIGTERM)."""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable

from netspec.language.diagnostics import UsageError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a port in use or a host that does not resolve is a UsageError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"cannot listen on host {host!r}: {e}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            said = f"port {port} is in use: {e.strerror}; choose another with --port (0: any free one)"
            raise UsageError(said) from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def run(app: Any, sock: socket.socket, access_log: bool, ready: Callable[[], None]) -> int:
    """Serve until a signal; the exit code: 0, or 128 + the signal's number."""
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.signals: list[int] = []

        def handle_exit(self, sig: int, frame: Any) -> None:
            self.signals.append(sig)
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            ready()

    config = uvicorn.Config(app, log_level="warning", access_log=access_log, timeout_graceful_shutdown=3, lifespan="on")
    server = Server(config)
    server.run(sockets=[sock])
    return 128 + server.signals[0] if server.signals else 0
