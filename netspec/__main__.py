"""`python -m netspec`: Ctrl-C or SIGTERM while netspec is still being imported ends it quietly too
(130, 143); once `main` runs, it handles both itself."""

import signal
import sys


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _terminated)
try:
    from netspec.cli import main
except KeyboardInterrupt:
    sys.exit(130)

sys.exit(main())
