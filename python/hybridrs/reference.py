"""Plain Python / numpy reference implementations.

These are deliberately simple (a full sort per question and setting) and independent of the
Rust kernels: they are the oracle in the tests and the baseline in the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .data import RetrievalSet

__all__ = ["average_precision", "evaluate_scores", "query_setting_metrics", "ranks"]


def _tie_groups(scores: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relevant and total counts per tie group, best group first."""
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    r = rel[order].astype(np.int64)
    starts = np.r_[True, s[1:] != s[:-1]]
    gid = np.cumsum(starts) - 1
    tp = np.bincount(gid, weights=r).astype(np.int64)
    n = np.bincount(gid).astype(np.int64)
    return tp, n


def average_precision(scores: np.ndarray, rel: np.ndarray) -> float:
    """Full-list AP with tied scores as one threshold step (as scikit-learn)."""
    tp, n = _tie_groups(np.asarray(scores, dtype=np.float64), np.asarray(rel, dtype=bool))
    k = tp.sum()
    if k == 0:
        return float("nan")
    return float(np.sum(tp * np.cumsum(tp) / np.cumsum(n)) / k)


def ranks(scores: np.ndarray, rel: np.ndarray) -> list[int]:
    """Rank (1 + number of candidates scored strictly higher) of each relevant candidate."""
    s = np.asarray(scores, dtype=np.float64)
    return [1 + int(np.sum(s > s[i])) for i in np.flatnonzero(rel)]


def query_setting_metrics(
    scores: np.ndarray,
    rel: np.ndarray,
    recall_at: Sequence[int],
    map_at: int,
    map_norm: str,
) -> tuple[float, float, list[float], float]:
    """(AP, AP@K, recall@each K, rank distance) of one question in one setting."""
    s = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(rel, dtype=bool)
    tp, n = _tie_groups(s, rel)
    k = int(tp.sum())
    if k == 0:
        nan = float("nan")
        return nan, nan, [nan] * len(recall_at), nan
    prec = tp * np.cumsum(tp) / np.cumsum(n)
    ap = float(prec.sum() / k)
    inside = np.cumsum(n) <= map_at
    norm = k if map_norm.replace(" ", "").lower() == "r" else min(k, map_at)
    ap_k = float(prec[inside].sum() / norm)
    rk = ranks(s, rel)
    rec = [sum(1 for r in rk if r <= kk) / k for kk in recall_at]
    return ap, ap_k, rec, float(max(rk) - min(rk))


def evaluate_scores(
    dataset: RetrievalSet,
    scores: np.ndarray,
    recall_at: Sequence[int] = (1, 10),
    map_at: int = 10,
    map_norm: str = "R",
) -> dict[str, Any]:
    """All settings of a score matrix, the slow way (one sort per question and setting).

    Returns the same dictionary of per-setting means as the Rust kernel
    (``pair_map``, ``pair_n``, ``multi_map``, ``rank_distance``, ...), so that an
    :class:`~hybridrs.evaluation.EvalReport` can be built from either.
    """
    n_l = len(dataset.languages)
    n_k = len(recall_at)
    offs = dataset.lang_offsets
    sums: dict[str, np.ndarray] = {
        "pair_map": np.zeros((n_l, n_l)),
        "pair_map_at_k": np.zeros((n_l, n_l)),
        "pair_recall": np.zeros((n_l, n_l, n_k)),
        "multi_map": np.zeros(n_l),
        "multi_map_at_k": np.zeros(n_l),
        "multi_recall": np.zeros((n_l, n_k)),
        "rank_distance": np.zeros(n_l),
    }
    pair_n = np.zeros((n_l, n_l), dtype=np.int64)
    multi_n = np.zeros(n_l, dtype=np.int64)
    micro: list[float] = []
    for i in range(dataset.n_questions):
        row = np.asarray(scores[i], dtype=np.float64)
        if not np.all(np.isfinite(row)):
            raise ValueError(f"scores: non-finite value in row {i}")
        rel = np.zeros(dataset.n_candidates, dtype=bool)
        rel[dataset.relevant(i)] = True
        lq = int(dataset.question_lang[i])
        ap, ap_k, rec, rd = query_setting_metrics(row, rel, recall_at, map_at, map_norm)
        if not np.isnan(ap):
            multi_n[lq] += 1
            sums["multi_map"][lq] += ap
            sums["multi_map_at_k"][lq] += ap_k
            sums["multi_recall"][lq] += rec
            sums["rank_distance"][lq] += rd
            micro.append(ap)
        for lc in range(n_l):
            a, b = int(offs[lc]), int(offs[lc + 1])
            ap, ap_k, rec, _ = query_setting_metrics(
                row[a:b], rel[a:b], recall_at, map_at, map_norm
            )
            if np.isnan(ap):
                continue
            pair_n[lq, lc] += 1
            sums["pair_map"][lq, lc] += ap
            sums["pair_map_at_k"][lq, lc] += ap_k
            sums["pair_recall"][lq, lc] += rec
    with np.errstate(invalid="ignore", divide="ignore"):
        out: dict[str, Any] = {
            "pair_n": pair_n,
            "multi_n": multi_n,
            "pair_map": sums["pair_map"] / pair_n,
            "pair_map_at_k": sums["pair_map_at_k"] / pair_n,
            "pair_recall": sums["pair_recall"] / pair_n[:, :, None],
            "multi_map": sums["multi_map"] / multi_n,
            "multi_map_at_k": sums["multi_map_at_k"] / multi_n,
            "multi_recall": sums["multi_recall"] / multi_n[:, None],
            "rank_distance": sums["rank_distance"] / multi_n,
        }
    out["multi_micro"] = float(np.mean(micro)) if micro else float("nan")
    return out
