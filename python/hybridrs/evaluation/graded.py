"""Graded-relevance evaluation for large retrieval sets (BEIR / MIRACL): nDCG@10 and
recall@100, exact, in Rust (:func:`hybridrs._core.graded_metrics`), from a score matrix or from
embeddings a block of rows at a time (never the whole matrix).

Definitions: linear gains (as trec_eval's ``ndcg_cut``, which BEIR reports), the pooled ranking
over all candidates; tied scores are resolved by expectation over the orders of each tie group,
so no tie-breaking rule enters the figure (without ties, the usual definitions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._checks import as_int
from ..data import RetrievalSet

__all__ = ["GradedReport", "evaluate_graded"]


class GradedReport:
    """Per-question nDCG@k and recall@k, with means overall and per query language."""

    def __init__(
        self, ds: RetrievalSet, ndcg: np.ndarray, recall: np.ndarray, ndcg_at: int, recall_at: int
    ) -> None:
        self.languages = tuple(ds.languages)
        self.question_lang = np.asarray(ds.question_lang, dtype=np.int64)
        self.ndcg = ndcg
        self.recall = recall
        self.ndcg_at = ndcg_at
        self.recall_at = recall_at

    def summary(self) -> dict[str, float]:
        """Means over the questions (each question weighs the same, as BEIR averages)."""
        ok = ~np.isnan(self.ndcg)
        return {
            f"ndcg@{self.ndcg_at}": float(self.ndcg[ok].mean()) if ok.any() else float("nan"),
            f"recall@{self.recall_at}": float(self.recall[ok].mean()) if ok.any() else float("nan"),
            "n_questions": int(ok.sum()),
        }

    def per_language(self) -> dict[str, dict[str, float]]:
        """The means of each query language."""
        out = {}
        for i, lang in enumerate(self.languages):
            m = (self.question_lang == i) & ~np.isnan(self.ndcg)
            if m.any():
                out[lang] = {
                    f"ndcg@{self.ndcg_at}": float(self.ndcg[m].mean()),
                    f"recall@{self.recall_at}": float(self.recall[m].mean()),
                    "n_questions": int(m.sum()),
                }
        return out


def evaluate_graded(
    dataset: RetrievalSet,
    scores_or_queries: Any,
    candidate_embeddings: Any = None,
    *,
    ndcg_at: int = 10,
    recall_at: int = 100,
    block_rows: int | None = None,
    progress: bool = False,
) -> GradedReport:
    """nDCG@``ndcg_at`` and recall@``recall_at`` of a score matrix ``(questions, candidates)``
    or of embeddings (dot products, scored a block of rows at a time), with the data set's
    graded relevance (``relevance_gain``)."""
    from .evaluate import checked_embeddings, checked_scores, score_blocks

    ndcg_at = as_int(ndcg_at, "ndcg_at", 1, (1 << 32) - 1)
    recall_at = as_int(recall_at, "recall_at", 1, (1 << 32) - 1)
    common = (
        dataset.relevance_indptr,
        dataset.relevance_indices,
        np.ascontiguousarray(dataset.relevance_gain, dtype=np.float64),
        ndcg_at,
        recall_at,
    )
    if candidate_embeddings is None:
        parts = [_core.graded_metrics(checked_scores(dataset, scores_or_queries), 0, *common)]
    else:
        q, c = checked_embeddings(dataset, scores_or_queries, candidate_embeddings)
        rows = block_rows or max(1, (64 << 20) // (max(c.shape[0], 1) * q.dtype.itemsize))
        blocks: Any = score_blocks(q, c, rows)
        if progress:
            from tqdm.auto import tqdm

            blocks = tqdm(blocks, desc="scoring", unit="block", total=-(-q.shape[0] // rows))
        parts = [_core.graded_metrics(block, a, *common) for a, block in blocks]
    ndcg = np.concatenate([p["ndcg"] for p in parts])
    recall = np.concatenate([p["recall"] for p in parts])
    return GradedReport(dataset, ndcg, recall, ndcg_at, recall_at)
