"""The independent oracle: scikit-learn's average_precision_score per question and setting,
and rank distance by its plain definition, averaged the way the paper does."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from sklearn.metrics import average_precision_score

_STATE: dict = {}


def _init(scores, offsets, indptr, indices):
    _STATE.update(scores=scores, offsets=offsets, indptr=indptr, indices=indices)


def _rows(bounds):
    a, b = bounds
    s, offs = _STATE["scores"], _STATE["offsets"]
    indptr, indices = _STATE["indptr"], _STATE["indices"]
    n_l = len(offs) - 1
    out = []
    for i in range(a, b):
        row = s[i].astype(np.float64)
        rel = np.zeros(row.shape[0], dtype=bool)
        rel[indices[indptr[i] : indptr[i + 1]]] = True
        pooled = float(average_precision_score(rel, row))
        ranks = [1 + int(np.count_nonzero(row > row[r])) for r in np.flatnonzero(rel)]
        per_lang = []
        for lc in range(n_l):
            lo, hi = offs[lc], offs[lc + 1]
            if rel[lo:hi].any():
                per_lang.append(float(average_precision_score(rel[lo:hi], row[lo:hi])))
            else:
                per_lang.append(float("nan"))
        out.append((pooled, max(ranks) - min(ranks), per_lang))
    return out


def sklearn_oracle(dataset, scores) -> dict:
    """Per-setting means, summary and per-question values from scikit-learn."""
    nq = dataset.n_questions
    chunk = 256
    bounds = [(a, min(a + chunk, nq)) for a in range(0, nq, chunk)]
    args = (scores, dataset.lang_offsets, dataset.relevance_indptr, dataset.relevance_indices)
    with ProcessPoolExecutor(
        max_workers=os.cpu_count() or 2, initializer=_init, initargs=args
    ) as ex:
        rows = [r for part in ex.map(_rows, bounds) for r in part]
    n_l = len(dataset.languages)
    ap = np.array([r[0] for r in rows])
    rd = np.array([r[1] for r in rows], dtype=np.float64)
    lang_ap = np.array([r[2] for r in rows])
    ql = dataset.question_lang
    pair = np.full((n_l, n_l), np.nan)
    pair_n = np.zeros((n_l, n_l), dtype=int)
    multi = np.full(n_l, np.nan)
    rank_distance = np.full(n_l, np.nan)
    for lq in range(n_l):
        sel = ql == lq
        if sel.any():
            multi[lq] = ap[sel].mean()
            rank_distance[lq] = rd[sel].mean()
        for lc in range(n_l):
            v = lang_ap[sel, lc]
            v = v[~np.isnan(v)]
            pair_n[lq, lc] = v.size
            if v.size:
                pair[lq, lc] = v.mean()
    eye = np.eye(n_l, dtype=bool)
    summary = {
        "mono": float(np.mean(pair[eye & (pair_n > 0)])),
        "cross": float(np.mean(pair[~eye & (pair_n > 0)])),
        "multi": float(np.nanmean(multi)),
        "rank_distance": float(np.nanmean(rank_distance)),
        "multi_micro": float(ap.mean()),
    }
    return {
        "pair": pair,
        "pair_n": pair_n,
        "multi": multi,
        "rank_distance": rank_distance,
        "summary": summary,
        "ap": ap,
        "rd": rd,
        "lang_ap": lang_ap,
    }
