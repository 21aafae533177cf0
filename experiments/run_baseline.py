"""LLM-only baseline on ARC: `hybrid-arc baseline` as a script (the same parser and function).

    python experiments/run_baseline.py --data arc-agi-1:evaluation --limit 5 --backbone tiny-random --out runs/b

Writes submission.json, results.jsonl, summary.json and config.json into --out and prints a table.
Exit 0 on success, 2 on bad input (one line per problem on stderr), 1 on internal faults.
"""

from __future__ import annotations

import sys

from hybrid_pipeline.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["baseline", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
