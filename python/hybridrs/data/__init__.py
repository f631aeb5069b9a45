"""Data: LAReQA and BEIR / MIRACL-layout retrieval sets (evaluation), parallel
question/passage pairs (training), their subsets and splits, and the one hub policy (fail
fast when there is no hub).

The first step of the pipeline: it imports nothing else of hybridrs but the Rust core.
"""

from .beir import is_beir_dir, load_beir
from .hub import hub_unreachable_reason
from .lareqa import LANG_CODE_RE, Candidate, Question, RetrievalSet, load_lareqa
from .parallel import ParallelQA, load_parallel_qa
from .splits import CPU_EVAL_ARTICLES, eval_subset, split_validation, validation_set

#: Where the evaluation and training sets live by default: ``../shared/data`` beside the
#: working directory (the repository's layout).
DEFAULT_DATA_DIR = "../shared/data"

__all__ = [
    "CPU_EVAL_ARTICLES",
    "DEFAULT_DATA_DIR",
    "LANG_CODE_RE",
    "Candidate",
    "ParallelQA",
    "Question",
    "RetrievalSet",
    "eval_subset",
    "hub_unreachable_reason",
    "is_beir_dir",
    "load_beir",
    "load_lareqa",
    "load_parallel_qa",
    "split_validation",
    "validation_set",
]
