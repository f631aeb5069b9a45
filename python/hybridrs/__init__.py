"""hybridrs: hybrid batch training and exact, fast evaluation of multilingual dense retrievers.

The pipeline, one package a step (each imports only the ones before it):

* :mod:`hybridrs.data`: LAReQA retrieval sets, parallel question/passage pairs, subsets and
  splits;
* :mod:`hybridrs.sampling`: pair pools and the hybrid batch sampler (Rust);
* :mod:`hybridrs.models`: the :class:`~hybridrs.models.Encoder`, the TF-IDF baseline, the
  offline default encoder, the model resolver and the embedding cache;
* :mod:`hybridrs.evaluation`: exact mAP / recall / rank distance (Rust), reports, plots, the
  hnswlib check;
* :mod:`hybridrs.train`: settings, batches, loss, checkpoints, the trainer, the model card;
* :mod:`hybridrs.cli`: the thin ``hybridrs-train`` / ``hybridrs-eval`` entry points.

:mod:`hybridrs.reference` keeps plain-Python implementations as the test oracle.
"""

from ._core import __version__
from .data import (
    Candidate,
    ParallelQA,
    Question,
    RetrievalSet,
    load_beir,
    load_lareqa,
    load_parallel_qa,
)
from .evaluation import EvalReport, GradedReport, evaluate, evaluate_graded
from .models import TfidfEncoder
from .sampling import HybridBatchSampler, PairPool

__all__ = [
    "Candidate",
    "EvalReport",
    "GradedReport",
    "HybridBatchSampler",
    "PairPool",
    "ParallelQA",
    "Question",
    "RetrievalSet",
    "TfidfEncoder",
    "__version__",
    "evaluate",
    "evaluate_graded",
    "load_beir",
    "load_lareqa",
    "load_parallel_qa",
]
