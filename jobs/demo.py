"""spark-submit entry point: `spark-submit jobs/demo.py --help` (same options as `embedpipe demo`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from embedpipe.cli import job_main


def main(argv: Sequence[str] | None = None) -> int:
    return job_main("demo", argv)


if __name__ == "__main__":
    sys.exit(main())
