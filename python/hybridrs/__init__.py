"""hybridrs: hybrid batch training and exact, fast evaluation of multilingual dense retrievers.

The pipeline, one module a step: :mod:`hybridrs.data` (LAReQA retrieval sets) ->
:mod:`hybridrs.evaluation` (exact mAP / rank distance over every language pair, in Rust) ->
:mod:`hybridrs.encoders` (TF-IDF baseline and local transformers models) -> :mod:`hybridrs.cli`.
:mod:`hybridrs.reference` keeps plain-Python implementations as the test oracle.
"""

from ._core import __version__
from .data import Candidate, Question, RetrievalSet, load_lareqa
from .evaluation import EvalReport, evaluate

__all__ = [
    "Candidate",
    "EvalReport",
    "Question",
    "RetrievalSet",
    "__version__",
    "evaluate",
    "load_lareqa",
]
