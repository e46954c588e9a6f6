#!/usr/bin/env python3
"""Replay the dead-letter queue: the same as `jobpipe dlq replay` (see `--help`).

scripts/replay_dlq.py --stack jobpipe --dry-run
scripts/replay_dlq.py --type resize --error-type TimeoutError --limit 100 --rate 10
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from jobpipe.cli.main import main as jobpipe

    return jobpipe(["dlq", "replay", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
