"""Per-question results of one model on one retrieval set, kept so that comparisons (paired
statistics, bias figures) are recomputed without re-encoding anything.

:func:`question_results` scores the set block by block from embeddings; for every block the
Rust kernel gives each question's AP in every setting (pooled and against each candidate
language), and the same block gives the rank of every relevant candidate (pooled, and within
its own language: ``1 +`` the candidates scored strictly higher), so all figures come from the
same float32 scores. The result is a ``pyarrow.Table``, written as Parquet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..data import RetrievalSet

__all__ = ["question_results", "read_results", "write_results"]


def _ranks(block: np.ndarray, rel: list[np.ndarray], offsets: np.ndarray) -> list[np.ndarray]:
    """For each row, ``(R, L)`` counts of candidates scored strictly above each relevant one,
    per candidate language."""
    r_max = max((len(r) for r in rel), default=0)
    b = block.shape[0]
    idx = np.zeros((b, max(r_max, 1)), dtype=np.int64)
    valid = np.zeros((b, max(r_max, 1)), dtype=bool)
    for i, r in enumerate(rel):
        idx[i, : len(r)] = r
        valid[i, : len(r)] = True
    thr = np.take_along_axis(block, idx, axis=1)  # (b, R)
    gt = block[:, None, :] > thr[:, :, None]  # (b, R, nc)
    per_lang = np.add.reduceat(gt, offsets[:-1], axis=2, dtype=np.int64)  # (b, R, L)
    # reduceat of an empty language slice repeats the next value: zero those
    empty = offsets[1:] == offsets[:-1]
    per_lang[:, :, empty] = 0
    return [per_lang[i, : len(r)] for i, r in enumerate(rel)]


def question_results(ds: RetrievalSet, q: np.ndarray, c: np.ndarray, block_rows: int = 64) -> Any:
    """A ``pyarrow.Table``, one row per question: ``question`` (index), ``id``, ``lang``,
    ``ap`` (pooled), ``ap_<l>`` (against the candidates of language ``l``; NaN where the
    question has no relevant candidate there), ``rel_langs`` and ``ranks`` (each relevant
    candidate's language and pooled rank, in relevance order), ``lang_ranks`` (its rank among
    the candidates of its own language), and the bias figures of
    :mod:`hybridrs.evaluation.bias`: ``max_rank`` (Max@R), ``own_first``, ``top1_own`` and
    ``top10_own`` (own-language share of the top 1 / 10)."""
    import pyarrow as pa

    from .bias import BiasReport
    from .evaluate import checked_embeddings, score_blocks

    q, c = checked_embeddings(ds, q, c)
    offsets = np.asarray(ds.lang_offsets, dtype=np.int64)
    cand_lang = np.searchsorted(offsets, np.arange(ds.n_candidates), side="right") - 1
    n_l = len(ds.languages)
    ap = np.empty(ds.n_questions)
    lang_ap = np.empty((ds.n_questions, n_l))
    ranks: list[list[int]] = []
    lang_ranks: list[list[int]] = []
    rel_langs: list[list[str]] = []
    common: tuple[Any, ...] = (
        ds.relevance_indptr,
        ds.relevance_indices,
        ds.lang_offsets,
        [],
        1,
        "R",
    )
    bias_parts: list[dict[str, np.ndarray]] = []
    for a, block in score_blocks(q, c, block_rows):
        b = a + block.shape[0]
        per = _core.query_metrics(block, a, *common)
        rel_args = (ds.relevance_indptr, ds.relevance_indices, ds.lang_offsets)
        bias_parts.append(_core.bias_counts(block, a, *rel_args, [1, 10]))
        ap[a:b] = per["ap"]
        lang_ap[a:b] = np.asarray(per["lang_ap"]).reshape(b - a, n_l)
        rel = [np.asarray(ds.relevant(i), dtype=np.int64) for i in range(a, b)]
        for r, counts in zip(rel, _ranks(block, rel, offsets), strict=False):
            langs = cand_lang[r]
            ranks.append((1 + counts.sum(axis=1)).tolist())
            lang_ranks.append((1 + counts[np.arange(len(r)), langs]).tolist())
            rel_langs.append([ds.languages[x] for x in langs])
    cols: dict[str, Any] = {
        "question": np.arange(ds.n_questions, dtype=np.int64),
        "id": [x.id for x in ds.questions],
        "lang": [x.lang for x in ds.questions],
        "ap": ap,
    }
    for j, lang in enumerate(ds.languages):
        cols[f"ap_{lang}"] = lang_ap[:, j]
    bias = {k: np.concatenate([p[k] for p in bias_parts]) for k in bias_parts[0]}
    rep = BiasReport(ds, (1, 10), bias["max_rank"], bias["lang_min_rank"], bias["top_counts"])
    cols["max_rank"] = rep.max_rank
    cols["own_first"] = rep.own_first()
    cols["top1_own"] = rep.own_share(1)
    cols["top10_own"] = rep.own_share(10)
    cols["rel_langs"] = pa.array(rel_langs, type=pa.list_(pa.string()))
    cols["ranks"] = pa.array(ranks, type=pa.list_(pa.int64()))
    cols["lang_ranks"] = pa.array(lang_ranks, type=pa.list_(pa.int64()))
    return pa.table(cols, metadata={"languages": ",".join(ds.languages), "set": ds.name})


def write_results(table: Any, path: str | Path) -> None:
    """Writes a results table as Parquet (atomically: a temporary file renamed)."""
    import os

    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".tmp-{p.name}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, p)


def read_results(path: str | Path) -> Any:
    """A results table written by :func:`write_results`."""
    import pyarrow.parquet as pq

    return pq.read_table(path)
