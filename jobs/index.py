"""spark-submit entry point: `spark-submit jobs/index.py --help` (same options as `embedpipe index`)."""

from __future__ import annotations

import os
import sys

# spark-submit puts this folder first on sys.path, where jobs/tokenize.py would shadow the standard
# library's tokenize module (imported by linecache, inspect, ...): drop it before importing anything.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

from embedpipe.cli import job_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    return job_main("index", argv)


if __name__ == "__main__":
    sys.exit(main())
