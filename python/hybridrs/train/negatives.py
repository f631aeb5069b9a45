"""Language-aware hard negatives, mined once from the base model with hnswlib: for each
training question, the passages of its **own language** that the base model scores highest
while not being its answer. Those are exactly the passages language bias pulls up; used as
extra candidates in the loss, they teach the model to rank the right answer in another
language above a wrong one in the question's language."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import ParallelQA

__all__ = ["mine_own_language_negatives"]


def mine_own_language_negatives(
    qa: ParallelQA,
    embed: Callable[[list[str], str], np.ndarray],
    k: int,
    ef: int = 200,
    seed: int = 0,
) -> list[list[int]]:
    """For each row ``i`` of ``qa``: up to ``k`` rows ``j`` in language ``qa.langs[i]``
    whose passage the base model ranks highest for question ``i``, leaving out its own group
    (``qa.ids[j] == qa.ids[i]``) and any passage with the same text as its answer. Hardest
    first. One hnswlib inner-product index per language over its distinct passages.

    Args:
        qa: The training pairs.
        embed: ``embed(texts, kind)`` -> L2-normalised float32 embeddings (``kind`` is
            ``"query"`` or ``"passage"``); the base model's.
        k: Negatives per question (>= 1).
        ef, seed: hnswlib's search breadth and seed.

    Returns:
        ``negatives[i]``: passage rows of ``qa`` (indices into ``qa.passages``).
    """
    try:
        import hnswlib
    except ImportError as e:  # pragma: no cover - hnswlib is in the model extra
        raise ImportError("mining hard negatives needs: pip install 'hybridrs[model]'") from e
    if k < 1:
        raise ValueError(f"mine_hard_negatives: must be >= 1, got {k}")
    n = len(qa)
    out: list[list[int]] = [[] for _ in range(n)]
    langs = np.asarray(qa.langs)
    for lang in qa.languages:
        rows = np.flatnonzero(langs == lang)
        # distinct passages of this language, each with the first row that holds it
        first: dict[str, int] = {}
        for r in rows.tolist():
            first.setdefault(qa.passages[r], r)
        texts = list(first)
        owner = np.array([first[t] for t in texts], dtype=np.int64)
        if len(texts) < 2:
            continue
        c = embed(texts, "passage")
        q = embed([qa.questions[r] for r in rows.tolist()], "query")
        index: Any = hnswlib.Index(space="ip", dim=c.shape[1])
        index.init_index(
            max_elements=len(texts), ef_construction=max(ef, 100), M=16, random_seed=seed
        )
        # one thread: a multi-threaded build links the graph in a racy order, and a resumed
        # run (or another rank) must mine the same negatives
        index.add_items(c, np.arange(len(texts)), num_threads=1)
        want = min(len(texts), k + 8)
        index.set_ef(max(ef, want))
        labels, _ = index.knn_query(q, k=want)
        for r, cand in zip(rows.tolist(), labels, strict=False):
            gid, answer = qa.ids[r], qa.passages[r]
            picked = []
            for t in cand.tolist():
                j = int(owner[t])
                if qa.ids[j] == gid or texts[t] == answer:
                    continue
                picked.append(j)
                if len(picked) == k:
                    break
            out[r] = picked
    return out
