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

__all__ = [
    "ReferencePairPool",
    "average_precision",
    "evaluate_scores",
    "query_setting_metrics",
    "ranks",
    "reference_plan_epoch",
]


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


# -- pair pool and hybrid sampler ----------------------------------------------------------
class ReferencePairPool:
    """A plain-Python pair pool: ``groups[g] = {lang: row}`` in order of first appearance."""

    def __init__(self, group_ids: Sequence[Any], langs: Sequence[Any]) -> None:
        if len(group_ids) != len(langs):
            raise ValueError("langs: length differs from group_ids")
        index: dict[Any, int] = {}
        self.groups: list[dict[Any, int]] = []
        for row, (g, lang) in enumerate(zip(group_ids, langs, strict=False)):
            gi = index.setdefault(g, len(index))
            if gi == len(self.groups):
                self.groups.append({})
            if lang in self.groups[gi]:
                raise ValueError(
                    f"group_ids: rows {self.groups[gi][lang]} and {row} have the "
                    "same group id and language"
                )
            self.groups[gi][lang] = row

    def stats(self) -> dict[str, Any]:
        """Groups, rows, mono pairs and ordered cross pairs, per language and pair."""
        per_lang: dict[Any, int] = {}
        per_pair: dict[str, int] = {}
        cross = 0
        for grp in self.groups:
            k = len(grp)
            cross += k * (k - 1)
            for a in grp:
                per_lang[a] = per_lang.get(a, 0) + 1
                for b in grp:
                    if a != b:
                        per_pair[f"{a}-{b}"] = per_pair.get(f"{a}-{b}", 0) + 1
        rows = sum(len(g) for g in self.groups)
        return {
            "groups": len(self.groups),
            "rows": rows,
            "mono_pairs": rows,
            "cross_pairs": cross,
            "rows_per_language": per_lang,
            "cross_pairs_per_language_pair": per_pair,
        }


def reference_plan_epoch(
    pool: ReferencePairPool,
    batch_size: int,
    alpha: float,
    seed: int,
    epoch: int,
    drop_last: bool = True,
) -> list[tuple[Any, list[tuple[int, int]]]]:
    """One epoch of hybrid batches, the plain way: ``[(mode, [(q_row, p_row), ...]), ...]``
    with ``mode`` a language or ``"cross"``. Same rules as the Rust sampler (fresh groups from
    a per-epoch shuffle first, then reuse; no group twice in a batch), its own random stream."""
    import random

    rng = random.Random(seed * 1_000_003 + epoch)
    groups = pool.groups
    langs = sorted({lang for g in groups for lang in g})
    mono_langs = [lang for lang in langs if sum(lang in g for g in groups) >= batch_size]
    cross_ok = [i for i, g in enumerate(groups) if len(g) >= 2]
    if alpha < 1 and len(cross_ok) < batch_size:
        raise ValueError("batch_size: too few groups with 2+ languages for a cross batch")
    if alpha > 0 and not mono_langs:
        raise ValueError("batch_size: no language has enough groups for a mono batch")
    eligible = len(cross_ok) if alpha == 0 else len(groups)
    steps = eligible // batch_size if drop_last else -(-eligible // batch_size)
    order = list(range(len(groups)))
    rng.shuffle(order)
    queues = {lang: [g for g in order if lang in groups[g]] for lang in mono_langs}
    queues["cross"] = [g for g in order if len(groups[g]) >= 2]
    cursor = dict.fromkeys(queues, 0)
    used: set[int] = set()
    out = []
    for _ in range(steps):
        mode = rng.choice(mono_langs) if rng.random() < alpha else "cross"
        queue = queues[mode]
        batch: list[int] = []
        while len(batch) < batch_size and cursor[mode] < len(queue):
            g = queue[cursor[mode]]
            cursor[mode] += 1
            if g not in used:
                used.add(g)
                batch.append(g)
        while len(batch) < batch_size:
            g = rng.choice(queue)
            if g not in batch:
                batch.append(g)
        pairs = []
        for g in batch:
            grp = groups[g]
            if mode == "cross":
                a, b = rng.sample(sorted(grp), 2)
                pairs.append((grp[a], grp[b]))
            else:
                pairs.append((grp[mode], grp[mode]))
        out.append((mode, pairs))
    return out


# -- language-bias counts ------------------------------------------------------------------
def bias_counts(
    dataset: RetrievalSet, scores: np.ndarray, top_k: Sequence[int] = (1, 10)
) -> dict[str, np.ndarray]:
    """The per-question bias counts the plain way (a full sort of every row): ``max_rank``,
    ``lang_min_rank`` (n x L, 0 where none) and ``top_counts`` (n x L x len(top_k))."""
    n_l = len(dataset.languages)
    offs = np.asarray(dataset.lang_offsets)
    lang_of = np.searchsorted(offs, np.arange(dataset.n_candidates), side="right") - 1
    n = dataset.n_questions
    max_rank = np.zeros(n, dtype=np.int64)
    lang_min = np.zeros((n, n_l), dtype=np.int64)
    top = np.zeros((n, n_l, len(top_k)), dtype=np.int64)
    for i in range(n):
        row = np.asarray(scores[i], dtype=np.float64)
        srt = np.sort(row)  # rank of every candidate: 1 + how many score strictly higher
        rank = 1 + (len(row) - np.searchsorted(srt, row, side="right"))
        for c in dataset.relevant(i):
            r = int(rank[c])
            max_rank[i] = max(max_rank[i], r)
            lg = lang_of[c]
            lang_min[i, lg] = r if lang_min[i, lg] == 0 else min(lang_min[i, lg], r)
        for ki, k in enumerate(top_k):
            inside = rank <= k
            for lg in range(n_l):
                top[i, lg, ki] = int(np.sum(inside & (lang_of == lg)))
    return {"max_rank": max_rank, "lang_min_rank": lang_min, "top_counts": top}
