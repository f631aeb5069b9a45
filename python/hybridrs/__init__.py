"""hybridrs: hybrid batch training and exact, fast evaluation of multilingual dense retrievers.

The pipeline, one module a step: :mod:`hybridrs.data` (LAReQA retrieval sets) ->
:mod:`hybridrs.parallel` / :mod:`hybridrs.sampling` (parallel pairs, pools, hybrid batches) ->
:mod:`hybridrs.evaluation` (exact mAP / rank distance over every language pair, in Rust) ->
:mod:`hybridrs.encoders` (TF-IDF baseline and local transformers models) -> :mod:`hybridrs.cli`.
:mod:`hybridrs.reference` keeps plain-Python implementations as the test oracle.
"""

from ._core import __version__
from .data import Candidate, Question, RetrievalSet, load_lareqa
from .evaluation import EvalReport, evaluate
from .parallel import ParallelQA, load_parallel_qa
from .sampling import HybridBatchSampler, PairPool

__all__ = [
    "Candidate",
    "EvalReport",
    "HybridBatchSampler",
    "PairPool",
    "ParallelQA",
    "Question",
    "RetrievalSet",
    "__version__",
    "evaluate",
    "load_lareqa",
    "load_parallel_qa",
]
