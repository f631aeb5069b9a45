"""``hybridrs-compare``: strategies x seeds (x both directions), each cell an ordinary training
run, evaluated on the full test set, compared with paired statistics (cluster bootstrap over
question ids, randomisation test, Holm). Resumable: run the same command again to continue.

    hybridrs-compare --strategies mono,cross,hybrid --seeds 0,1,2 \\
        --train_data ../shared/data/mlqa-r --eval_data ../shared/data/xquad-r
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``hybridrs-compare``: returns the exit status (2 with an ``error:`` line on bad input)."""
    try:
        import torch  # noqa: F401
        from transformers import HfArgumentParser
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        print(
            f'hybridrs-compare needs the model extra: pip install "hybridrs[model]" ({e})',
            file=sys.stderr,
        )
        return 2
    from ..train.experiment import ExperimentConfig, run_experiment
    from ..train.settings import TrainConfig, read_config_file

    hf_logging.disable_progress_bar()
    parser = HfArgumentParser(
        (TrainConfig, ExperimentConfig),  # type: ignore[arg-type]
        prog="hybridrs-compare",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--config", help="a YAML or JSON file of training settings")
    try:
        args = list(argv) if argv is not None else sys.argv[1:]
        if "--config" in args:
            i = args.index("--config")
            if i + 1 >= len(args):
                raise ValueError("config: give a file after --config")
            parser.set_defaults(**read_config_file(args[i + 1]))
        cfg, exp, _ = parser.parse_args_into_dataclasses(args=args, look_for_args_file=False)
        cfg.validate()
        tables = run_experiment(cfg, exp)
        from ..evaluation.stats import markdown

        print(markdown(tables))
        return 0
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"hybridrs-compare: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
