"""Reading LSP messages from a byte stream, robustly: ``Content-Length`` framing that recovers.

pygls' reader trusts every ``Content-Length``: one wrong length swallows the messages after it
(too long: it waits for bytes that never come; too short: the rest of the body spoils the next
header), and malformed JSON is logged with a traceback. Here a message is delivered only when its
body is JSON; otherwise the reader resynchronises on the next ``Content-Length:`` header (a real
header ends in CR LF, which JSON text cannot contain unescaped), logging one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import threading
from typing import Any, BinaryIO, Callable

log = logging.getLogger("netspec.lsp")

NAME = b"Content-Length:"
MAX_HEADER = 8192  # bytes of headers after `Content-Length:`; more is junk

Deliver = Callable[[bytes], None]


class Framer:
    """Splits a byte stream into message bodies; ``feed`` bytes, ``deliver`` gets each JSON body."""

    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self._one():
            pass

    def _one(self) -> bool:
        """Take one message (or skip junk) from the buffer; whether to look again."""
        found = _header(self.buf)
        if found is None:
            self._skip(max(0, len(self.buf) - 64))  # keep what may be the start of a header
            return False
        at, length = found
        if at > 0:
            self._skip(at)
            return True
        end = self.buf.find(b"\r\n\r\n", len(NAME))
        if end < 0:
            if len(self.buf) > MAX_HEADER:
                self._skip(1)
                return True
            return False
        return self._body(end + 4, length)

    def _body(self, start: int, length: int) -> bool:
        body = self.buf[start : start + length]
        if len(body) == length and _is_json(body):
            self.buf = self.buf[start + length :]
            self.deliver(body)
            return True
        following = _header(self.buf, start)
        shorter = _json_prefix(self.buf[start : following[0]]) if following else None
        if following is not None and shorter is not None:  # the length was too large: the next header says so
            log.warning("a message's Content-Length (%d) was wrong; resynchronised on the next header", length)
            self.buf = self.buf[following[0] :]
            self.deliver(shorter)
            return True
        if len(body) < length and following is None:
            return False  # wait for the rest
        log.warning("skipped a malformed message (%d bytes declared, not JSON)", length)
        self.buf = self.buf[start:]  # the next header, when it comes, starts the next message
        return True

    def _skip(self, n: int) -> None:
        if n <= 0:
            return
        junk, self.buf = self.buf[:n], self.buf[n:]
        if junk.strip():
            log.warning("skipped %d bytes that are not an LSP message: %.60r", len(junk), junk)


def _header(buf: bytes, start: int = 0) -> tuple[int, int] | None:
    """The first `Content-Length: N` CR LF line at or after ``start``: its offset and N."""
    at = buf.find(NAME, start)
    while at >= 0:
        end = buf.find(b"\r\n", at)
        if end < 0:
            return None  # not all here yet
        value = buf[at + len(NAME) : end].strip(b" \t")
        if value.isdigit() and len(value) <= 9:
            return at, int(value)
        at = buf.find(NAME, at + 1)
    return None


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        return False
    return True


def _json_prefix(data: bytes) -> bytes | None:
    """The JSON object at the start of ``data`` (junk may follow it), or None."""
    try:
        text = data.decode("utf-8").lstrip()
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return text[:end].encode("utf-8") if isinstance(value, dict) else None


async def loop_over_stdin(stdin: BinaryIO, handle: Callable[[bytes], None], stopped: Callable[[], bool]) -> None:
    """Read stdin until it closes (or ``stopped()``), handing each message body to ``handle``. The
    reading thread is a daemon: `exit` never waits for a read that the client may never satisfy."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    try:  # the file descriptor itself: a daemon thread must hold no buffer's lock when the interpreter exits
        fd = stdin.fileno()
        read: Callable[[int], bytes] = functools.partial(os.read, fd)
    except (AttributeError, OSError, ValueError):
        read = getattr(stdin, "read1", stdin.read)

    def reader() -> None:
        data = b"x"
        while data:
            try:
                data = read(65536)
            except (OSError, ValueError):
                data = b""
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server is exiting
                loop.call_soon_threadsafe(chunks.put_nowait, data)

    threading.Thread(target=reader, name="netspec-lsp-stdin", daemon=True).start()
    framer = Framer(handle)
    while not stopped():
        data = await chunks.get()
        if not data:
            break
        framer.feed(data)


def message_handler(protocol: Any) -> Callable[[bytes], None]:
    """A body's handling by the pygls protocol: one log line, never a traceback, for what fails."""

    def handle(body: bytes) -> None:
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except Exception as exc:
            log.warning("skipped a message that is not a valid JSON-RPC message: %s", exc)
            return
        try:
            protocol.handle_message(message)
        except Exception as exc:
            log.error("handling a message failed: %s: %s", type(exc).__name__, exc)

    return handle
