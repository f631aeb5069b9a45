"""Evaluation: exact mAP, recall@k and rank distance over every language pair and the pooled
collection (Rust), the report with its tables and plots, and the hnswlib top-k check."""

from .evaluate import evaluate, map_at_k_of_rankings
from .graded import GradedReport, evaluate_graded
from .index import exact_top_k, hnsw_report
from .report import EvalReport

__all__ = [
    "EvalReport",
    "GradedReport",
    "evaluate",
    "evaluate_graded",
    "exact_top_k",
    "hnsw_report",
    "map_at_k_of_rankings",
]
