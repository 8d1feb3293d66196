"""spark-submit entry point: `spark-submit jobs/histories.py --help` (same options as `embedpipe histories`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from embedpipe.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("histories", argv)


if __name__ == "__main__":
    sys.exit(main())
