"""Top-k retrieval through an hnswlib index (what a deployed retriever does), checked against
exact search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data import RetrievalSet
from .evaluate import map_at_k_of_rankings

__all__ = ["exact_top_k", "hnsw_report"]


def exact_top_k(q: np.ndarray, c: np.ndarray, k: int, block: int | None = None) -> np.ndarray:
    """Exact top ``k`` candidates by inner product, best first, a block of questions at a time
    (never the whole score matrix in memory; a partial sort, so large corpora stay fast). Ties
    inside the top k are broken by candidate index; a tie at the k-th score may keep any of the
    tied candidates."""
    rows = block or max(1, (64 << 20) // (max(c.shape[0], 1) * 4))
    out = np.empty((q.shape[0], k), dtype=np.int64)
    for a in range(0, q.shape[0], rows):
        s = q[a : a + rows] @ c.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.argsort(-s)
        vals = np.take_along_axis(s, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)
        out[a : a + rows] = np.take_along_axis(part, order, axis=1)[:, :k]
    return out


def hnsw_report(
    q: np.ndarray,
    c: np.ndarray,
    ds: RetrievalSet,
    *,
    m: int = 16,
    ef_construction: int = 200,
    ef_search: int = 100,
    exact_search_below: int = 1000,
    seed: int = 0,
    save_to: Path | None = None,
) -> dict[str, Any]:
    """Top-10 retrieval over the pooled candidates through hnswlib (inner product on normalised
    vectors; exact search below ``exact_search_below`` candidates): recall@10 against exact
    search, and mAP@10 of both rankings (by the exact evaluator). The index is saved to
    ``save_to`` when given."""
    k = min(10, ds.n_candidates)
    exact = exact_top_k(q, c, k)
    method = "exact"
    approx = exact
    if ds.n_candidates >= exact_search_below:
        try:
            import hnswlib
        except ImportError as e:
            raise ImportError("the hnswlib index needs: pip install 'hybridrs[model]'") from e

        index = hnswlib.Index(space="ip", dim=c.shape[1])
        index.init_index(
            max_elements=ds.n_candidates, M=m, ef_construction=ef_construction, random_seed=seed
        )
        index.add_items(c, np.arange(ds.n_candidates))
        index.set_ef(max(ef_search, k))
        approx, _ = index.knn_query(q, k=k)
        method = "hnsw"
        if save_to is not None:
            save_to.parent.mkdir(parents=True, exist_ok=True)
            index.save_index(str(save_to))
    recall = float(
        np.mean(
            [
                len(set(a) & set(e)) / k
                for a, e in zip(approx.tolist(), exact.tolist(), strict=False)
            ]
        )
    )
    return {
        "method": method,
        "recall@10_vs_exact": recall,
        "map@10_index": map_at_k_of_rankings(ds, approx),
        "map@10_exact": map_at_k_of_rankings(ds, exact),
        "M": m,
        "ef_search": ef_search,
    }
