"""`python -m netspec`: Ctrl-C or SIGTERM while netspec is still being imported ends it quietly too
(130, 143), even where a library turns the interruption into an error of its own; once `main` runs,
it handles both itself."""

import signal
import sys

_received: list[int] = []


def _stop(signum: int, frame: object) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _stop)
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _stop)
try:
    from netspec.cli import main

    code = main()  # a signal before main installs its own handlers still lands here
except BaseException:
    if _received:
        sys.exit(128 + _received[-1])
    raise

sys.exit(code)
