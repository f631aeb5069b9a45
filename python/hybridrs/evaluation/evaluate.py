"""Exact zero-shot evaluation of a retriever on a :class:`~hybridrs.data.RetrievalSet`.

:func:`evaluate` computes, in one pass over each score row (Rust, parallel, GIL released):

* ``mono[(l, l)]`` / ``cross[(lq, lc)]``: mAP of the questions in ``lq`` ranked against the
  candidates in ``lc`` only;
* ``multi[lq]``: mAP of the questions in ``lq`` against the pooled candidates of all languages;
* ``rank_distance[lq]``: mean over those questions of (max rank - min rank) among a question's
  relevant candidates in the pooled ranking (rank = 1 + the number scored strictly higher);
* recall@K and mAP@K for every setting.

AP is full-list average precision, identical to ``sklearn.metrics.average_precision_score``
per question (tied scores form one threshold step). A question without a relevant candidate in
a setting is left out of that setting; every setting reports its number of questions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _core
from .._checks import as_int
from ..data import RetrievalSet
from .report import EvalReport

__all__ = [
    "checked_embeddings",
    "checked_scores",
    "evaluate",
    "map_at_k_of_rankings",
    "score_blocks",
]

U32 = (1 << 32) - 1


# -- evaluate -----------------------------------------------------------------------------
def _float_matrix(x: Any, field: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{field}: expected a numpy array, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{field}: dtype must be float32 or float64, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{field}: expected a 2-d array, got shape {x.shape}")
    return x


def _check_rows(x: np.ndarray, n: int, field: str, what: str) -> None:
    if x.shape[0] != n:
        raise ValueError(f"{field}: has {x.shape[0]} rows but the data set has {n} {what}")


def checked_scores(dataset: RetrievalSet, scores: Any) -> np.ndarray:
    """A score matrix checked against ``dataset`` (dtype, shape), C-contiguous."""
    s = _float_matrix(scores, "scores")
    _check_rows(s, dataset.n_questions, "scores", "questions")
    if s.shape[1] != dataset.n_candidates:
        raise ValueError(
            f"scores: has {s.shape[1]} columns but the data set has "
            f"{dataset.n_candidates} candidates"
        )
    return np.ascontiguousarray(s)


def checked_embeddings(
    dataset: RetrievalSet, queries: Any, candidates: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Question and candidate embeddings checked against ``dataset`` (dtype, rows, one
    dimension), C-contiguous in their common dtype."""
    q = _float_matrix(queries, "query_embeddings")
    c = _float_matrix(candidates, "candidate_embeddings")
    _check_rows(q, dataset.n_questions, "query_embeddings", "questions")
    _check_rows(c, dataset.n_candidates, "candidate_embeddings", "candidates")
    if q.shape[1] != c.shape[1]:
        raise ValueError(
            f"candidate_embeddings: dimension {c.shape[1]} differs from "
            f"query_embeddings' {q.shape[1]}"
        )
    dtype = np.result_type(q.dtype, c.dtype)
    return np.ascontiguousarray(q, dtype=dtype), np.ascontiguousarray(c, dtype=dtype)


def score_blocks(
    q: np.ndarray, c: np.ndarray, rows: int, starts: Iterable[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(a, q[a:a + rows] @ c.T)`` for each block start ``a`` (default: every ``rows``), in
    one reused buffer (valid until the next block): the score matrix is never held whole."""
    nq = q.shape[0]
    ct = c.T
    buf = np.empty((min(rows, nq), c.shape[0]), dtype=np.result_type(q.dtype, c.dtype))
    for a in starts if starts is not None else range(0, nq, rows):
        b = min(a + rows, nq)
        np.matmul(q[a:b], ct, out=buf[: b - a])
        yield a, buf[: b - a]


def _blocked_metrics(
    q: np.ndarray,
    c: np.ndarray,
    rows: int,
    common: tuple[Any, ...],
    progress: bool,
) -> list[dict[str, np.ndarray]]:
    """Per-question metrics of ``q @ c.T`` block by block, one worker thread per core: each
    computes a block with a single-threaded BLAS call and counts it at once on the same thread
    (``single_thread``), its next block following. No core waits on another library's idle
    threads (OpenBLAS's workers spin after each call and would compete with the extension's
    pool), and each block is counted while it is still in cache. Results in block order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    nq, nc = q.shape[0], c.shape[0]
    starts = list(range(0, nq, rows))
    n_workers = max(1, min(os.cpu_count() or 1, len(starts)))
    out: list[dict[str, np.ndarray] | None] = [None] * len(starts)
    lock = threading.Lock()
    todo = iter(range(len(starts)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc="scoring", unit="block")
    ct = c.T

    def work() -> None:
        buf = np.empty((min(rows, nq), nc), dtype=np.result_type(q.dtype, c.dtype))
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            a = starts[i]
            b = min(a + rows, nq)
            np.matmul(q[a:b], ct, out=buf[: b - a])
            out[i] = _core.query_metrics(buf[: b - a], a, *common, single_thread=True)
            if bar is not None:
                with lock:
                    bar.update(1)

    try:
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(n_workers) as ex:
            for f in [ex.submit(work) for _ in range(n_workers)]:
                f.result()
    finally:
        if bar is not None:
            bar.close()
    return [p for p in out if p is not None]


_BACKENDS = ("auto", "fused", "blocked")


def _choose_backend(backend: str, dtype: np.dtype[Any]) -> bool:
    """Whether the embeddings form runs fused (True) or blocked (False)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend: must be one of {_BACKENDS}, got {backend!r}")
    can = _core.fused_available()
    if backend == "fused":
        if not can:
            raise ValueError(
                "backend: 'fused' needs an x86-64 CPU with AVX2 (or AVX-512) and FMA, and "
                "HYBRIDRS_SIMD not set to 'portable'; use 'blocked' or 'auto'"
            )
        if dtype != np.float32:
            raise ValueError(
                f"backend: 'fused' needs float32 embeddings, got {dtype}; cast them or use "
                "'blocked'"
            )
        return True
    return backend == "auto" and can and dtype == np.float32


def evaluate(
    dataset: RetrievalSet,
    scores_or_queries: Any,
    candidate_embeddings: Any = None,
    *,
    recall_at: Sequence[int] = (1, 10),
    map_at: int = 10,
    map_norm: str = "R",
    block_rows: int | None = None,
    keep_per_query: bool = True,
    progress: bool = False,
    backend: str = "auto",
) -> EvalReport:
    """Evaluates a retriever on every monolingual, cross-lingual and pooled setting.

    Two forms:

    * ``evaluate(dataset, scores)``: ``scores`` is a float32/float64 array of shape
      ``(n_questions, n_candidates)`` (higher is better). Read without a copy when C-contiguous.
    * ``evaluate(dataset, query_embeddings, candidate_embeddings)``: dot-product scores,
      never holding the whole matrix. Normalise the embeddings first for cosine similarity.
      With float32 embeddings on an x86-64 CPU with AVX-512 or AVX2 and FMA
      (``backend="fused"``, chosen by ``"auto"``), Rust computes the scores tile by tile and
      counts them while they are in cache, in about the time of the bare matmul; each score is
      one FMA chain over the dimensions, so the AVX-512 and AVX2 kernels give the same metrics
      bit for bit. Otherwise (``backend="blocked"``) one thread per core multiplies a block of
      rows (single-threaded BLAS) and counts it at once with the Rust kernel on the same thread
      (also within about 1.2x the bare matmul; see BENCHMARKS.md). Both give the exact metrics
      of the scores they compute; the two score sums may differ in the last bit (summation
      order), as any two BLAS calls may.

    Args:
        dataset: The retrieval set (see :func:`hybridrs.load_lareqa`).
        recall_at: Cutoffs of recall@K (share of a question's relevant candidates ranked in
            the top K, rank = 1 + number scored strictly higher).
        map_at: Cutoff of mAP@K.
        map_norm: ``"R"`` (divide by the number of relevant candidates, as trec_eval) or
            ``"min(k,R)"``.
        block_rows: Rows per block in the embeddings form (default: about 32 MB of scores a
            block for the blocked backend, one block per core at a time; all rows in one call
            for the fused one, or 20 steps with a progress bar).
        keep_per_query: Keep per-question values in ``report.per_query``.
        progress: Show a progress bar over blocks (embeddings form).
        backend: Embeddings form only: ``"auto"`` (fused when possible), ``"fused"`` or
            ``"blocked"``.

    Returns:
        An :class:`EvalReport`.

    Raises:
        TypeError: wrong dtype or not an array. ValueError: wrong shape, NaN/infinite
            scores, bad cutoffs.

    Example:
        >>> ds = hybridrs.load_lareqa("../shared/data/xquad-r")  # doctest: +SKIP
        >>> hybridrs.evaluate(ds, q_emb, c_emb).summary()["multi"]  # doctest: +SKIP
    """
    if isinstance(recall_at, (str, bytes)) or not hasattr(recall_at, "__iter__"):
        raise TypeError(f"recall_at: expected a sequence of cutoffs, got {recall_at!r}")
    recall_at = [as_int(k, "recall_at", 1, U32) for k in recall_at]
    map_at = as_int(map_at, "map_at", 1, U32)
    common = (
        dataset.relevance_indptr,
        dataset.relevance_indices,
        dataset.lang_offsets,
        recall_at,
        int(map_at),
        map_norm,
    )
    nq, nc = dataset.n_questions, dataset.n_candidates
    if candidate_embeddings is None:
        per = _core.query_metrics(checked_scores(dataset, scores_or_queries), 0, *common)
    else:
        q, c = checked_embeddings(dataset, scores_or_queries, candidate_embeddings)
        dtype = q.dtype
        use_fused = _choose_backend(backend, dtype)
        if use_fused:
            default_rows = nq if not progress else max(1, -(-nq // 20))
        else:
            default_rows = max(1, (32 << 20) // (max(nc, 1) * q.dtype.itemsize))
        rows = block_rows or default_rows
        parts: list[dict[str, np.ndarray]] = []
        if use_fused:
            starts: Iterable[int] = range(0, nq, rows)
            if progress:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc="scoring", unit="block")
            for a in starts:
                b = min(a + rows, nq)
                parts.append(_core.query_metrics_embeddings(q[a:b], c, a, *common))
        else:
            parts = _blocked_metrics(q, c, rows, common, progress)
        per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    agg = _core.aggregate(per, dataset.question_lang, len(dataset.languages), len(recall_at))
    return EvalReport(
        dataset.languages,
        agg,
        recall_at=recall_at,
        map_at=int(map_at),
        map_norm=map_norm,
        per_query=per if keep_per_query else None,
        name=dataset.name,
    )


def map_at_k_of_rankings(dataset: RetrievalSet, ranked: Any) -> float:
    """Pooled mAP@k of given top-k candidate lists (``ranked[i]``: question ``i``'s candidate
    indices, best first; k = ``ranked.shape[1]``), computed by the exact evaluator: the listed
    candidates get scores k, k-1, ..., 1 and every other candidate 0, so the AP@k terms (tie-
    inclusive position <= k, normalised by the number of relevant candidates) are exactly
    those of the list. For an approximate index's results, e.g. hnswlib's."""
    ranked = np.asarray(ranked, dtype=np.int64)
    nq, nc = dataset.n_questions, dataset.n_candidates
    if ranked.ndim != 2 or ranked.shape[0] != nq:
        raise ValueError(f"ranked: expected shape ({nq}, k), got {ranked.shape}")
    k = ranked.shape[1]
    if k < 1 or k > nc or ranked.min() < 0 or ranked.max() >= nc:
        raise ValueError(f"ranked: needs 1 <= k <= {nc} candidate indices in 0..{nc - 1}")
    common: tuple[Any, ...] = (
        dataset.relevance_indptr,
        dataset.relevance_indices,
        dataset.lang_offsets,
        [],
        k,
        "R",
    )
    rows = max(1, (32 << 20) // (nc * 4))
    buf = np.zeros((min(rows, nq), nc), dtype=np.float32)
    marks = np.arange(k, 0, -1, dtype=np.float32)
    total = 0.0
    for a in range(0, nq, rows):
        b = min(a + rows, nq)
        block = buf[: b - a]
        block[:] = 0.0
        np.put_along_axis(block, ranked[a:b], marks[None, :], axis=1)
        total += float(_core.query_metrics(block, a, *common)["ap_at_k"].sum())
    return total / nq
