"""Interim tables of a few entries of the techniques grid over the seeds they have finished,
without touching the grid's own ``comparison.*`` (which pair only seeds every entry has).

    .venv/bin/python experiments/techniques_pair_table.py hybrid,hybrid-langtemp 0,1

Prints the Markdown of :mod:`techniques_table` for the full XQuAD-R and the held-out MLQA-R
articles (Holm over the tests of these models only).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hybridrs.evaluation.stats import compare_cells
from techniques_table import render  # its sibling: the script's directory is on sys.path

GRID = Path("experiments/techniques-grid/mlqa-r-to-xquad-r")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    models, seeds = argv[1].split(","), [int(s) for s in argv[2].split(",")]
    tabs = {
        "mlqa-r-to-xquad-r": compare_cells(GRID, models, seeds),
        "mlqa-r held-out articles": compare_cells(GRID, models, seeds, results="heldout.parquet"),
    }
    print(render(tabs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
