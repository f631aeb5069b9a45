"""The language-bias dashboard, beside rank distance: computed per question in Rust
(:func:`hybridrs._core.bias_counts`, one pass over each pooled score row), summarised here.

* **Max@R**: the rank needed to recover all of a question's parallel answers (the worst pooled
  rank among its relevant candidates); lower is better.
* **Own-language first**: the share of questions whose best-ranked relevant candidate is the
  one in the question's own language (ties count as first); an unbiased retriever puts it
  first about as often as any other language's version.
* **Top-k own-language share**: the share of a question's top k (rank <= k, ties at the
  cutoff inside) that is in its own language, against that language's share of the pool.
* The **top-k language make-up** per query language: an L x L matrix (row: question
  language, column: candidate language) of the mean share of the top k; drawn as a heatmap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from .._checks import as_int
from ..data import RetrievalSet

__all__ = ["BiasReport", "bias_report"]


class BiasReport:
    """Per-question bias figures and their means per query language.

    Attributes:
        languages, top_k: Language codes and the cutoffs.
        max_rank: Worst pooled rank of each question's relevant candidates.
        lang_min_rank: ``n x L`` best pooled rank of a relevant candidate of each language
            (0 where the question has none there).
        top_counts: ``n x L x len(top_k)`` candidates of each language ranked <= k.
        question_lang: Language index of each question.
        pool_share: Share of each language in the pooled candidates.
    """

    def __init__(
        self,
        ds: RetrievalSet,
        top_k: Sequence[int],
        max_rank: np.ndarray,
        lang_min_rank: np.ndarray,
        top_counts: np.ndarray,
    ) -> None:
        n_l = len(ds.languages)
        self.languages = tuple(ds.languages)
        self.top_k = tuple(top_k)
        self.max_rank = max_rank.astype(np.int64)
        self.lang_min_rank = lang_min_rank.reshape(-1, n_l).astype(np.int64)
        self.top_counts = top_counts.reshape(-1, n_l, len(top_k)).astype(np.int64)
        self.question_lang = np.asarray(ds.question_lang, dtype=np.int64)
        sizes = np.diff(np.asarray(ds.lang_offsets, dtype=np.int64))
        self.pool_share = sizes / max(int(sizes.sum()), 1)

    # -- per question --------------------------------------------------------------------------
    def own_first(self) -> np.ndarray:
        """Per question: 1.0 if its best-ranked relevant candidate is in its own language
        (ties count), 0.0 if not, NaN without a relevant candidate in its own language."""
        lm = self.lang_min_rank
        own = lm[np.arange(len(lm)), self.question_lang]
        best = np.where(lm > 0, lm, np.iinfo(np.int64).max).min(axis=1)
        return np.where(own > 0, (own == best).astype(np.float64), np.nan)

    def top_share(self, k: int) -> np.ndarray:
        """``n x L``: share of each language in each question's top ``k``."""
        ki = self.top_k.index(k)
        c = self.top_counts[:, :, ki].astype(np.float64)
        return c / np.maximum(c.sum(axis=1, keepdims=True), 1)

    def own_share(self, k: int) -> np.ndarray:
        """Per question: share of its own language in its top ``k``."""
        return self.top_share(k)[np.arange(len(self.question_lang)), self.question_lang]

    # -- per query language ----------------------------------------------------------------------
    def _by_lang(self, values: np.ndarray) -> dict[str, float]:
        out = {}
        for i, lang in enumerate(self.languages):
            v = values[(self.question_lang == i) & ~np.isnan(values)]
            if v.size:
                out[lang] = float(v.mean())
        return out

    def share_matrix(self, k: int = 10) -> np.ndarray:
        """``L x L``: mean share of candidate language (column) in the top ``k`` of the
        questions of each language (row); NaN rows for languages without questions."""
        s = self.top_share(k)
        n_l = len(self.languages)
        out = np.full((n_l, n_l), np.nan)
        for i in range(n_l):
            m = self.question_lang == i
            if m.any():
                out[i] = s[m].mean(axis=0)
        return out

    def summary(self) -> dict[str, float]:
        """Means over query languages (as the paper's figures): ``max@R``, ``own_first``,
        ``top{k}_own_share`` for each cutoff, and ``own_pool_share`` (the share an unbiased
        top k would have on average)."""
        out = {
            "max@R": float(np.mean(list(self._by_lang(self.max_rank.astype(float)).values()))),
            "own_first": float(np.mean(list(self._by_lang(self.own_first()).values()))),
        }
        for k in self.top_k:
            out[f"top{k}_own_share"] = float(
                np.mean(list(self._by_lang(self.own_share(k)).values()))
            )
        langs_q = sorted(set(self.question_lang.tolist()))
        out["own_pool_share"] = float(np.mean([self.pool_share[i] for i in langs_q]))
        return out

    def per_language(self) -> dict[str, dict[str, float]]:
        """Every figure per query language."""
        figs = {"max@R": self._by_lang(self.max_rank.astype(float))}
        figs["own_first"] = self._by_lang(self.own_first())
        for k in self.top_k:
            figs[f"top{k}_own_share"] = self._by_lang(self.own_share(k))
        return {
            lang: {f: v[lang] for f, v in figs.items() if lang in v}
            for lang in self.languages
            if lang in figs["max@R"]
        }

    def to_json(self, path: str | Path) -> None:
        """Writes the summary, the per-language figures and the share matrices."""
        data = {
            "summary": self.summary(),
            "per_language": self.per_language(),
            "pool_share": dict(zip(self.languages, self.pool_share.tolist(), strict=False)),
            "share_matrix": {
                f"top{k}": [
                    [None if np.isnan(x) else float(x) for x in row] for row in self.share_matrix(k)
                ]
                for k in self.top_k
            },
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2))

    def heatmap(self, path: str | Path, k: int = 10, title: str | None = None) -> None:
        """A PNG heatmap of the top-``k`` language make-up per query language (cells: share in
        %), with each language's share of the pool on top for comparison."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        m = self.share_matrix(k)
        n_l = len(self.languages)
        fig, ax = plt.subplots(figsize=(0.55 * n_l + 2.5, 0.5 * n_l + 1.8))
        im = ax.imshow(m, vmin=0, vmax=1, cmap="magma")
        ax.set_xticks(range(n_l), self.languages)
        ax.set_yticks(range(n_l), self.languages)
        ax.set_xlabel(f"candidate language in the top {k}")
        ax.set_ylabel("question language")
        for i in range(n_l):
            for j in range(n_l):
                if not np.isnan(m[i, j]):
                    ax.text(j, i, f"{m[i, j] * 100:.0f}", ha="center", va="center", fontsize=7,
                            color="black" if m[i, j] > 0.5 else "white")  # fmt: skip
        fig.colorbar(im, ax=ax, label=f"share of the top {k}")
        s = self.summary()
        ax.set_title(
            title
            or f"top-{k} language make-up (pool share {s['own_pool_share'] * 100:.0f}% each); "
            f"own-first {s['own_first']:.2f}, Max@R {s['max@R']:.0f}",
            fontsize=8,
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)


def bias_report(
    dataset: RetrievalSet,
    scores_or_queries: Any,
    candidate_embeddings: Any = None,
    *,
    top_k: Sequence[int] = (1, 10),
    block_rows: int | None = None,
) -> BiasReport:
    """The bias dashboard of a score matrix ``(questions, candidates)``, or of embeddings
    (dot-product scores, a block of rows at a time, never the whole matrix)."""
    from .evaluate import checked_embeddings, checked_scores, score_blocks

    top_k = [as_int(k, "top_k", 1, (1 << 32) - 1) for k in top_k]
    common = (dataset.relevance_indptr, dataset.relevance_indices, dataset.lang_offsets, top_k)
    if candidate_embeddings is None:
        parts = [_core.bias_counts(checked_scores(dataset, scores_or_queries), 0, *common)]
    else:
        q, c = checked_embeddings(dataset, scores_or_queries, candidate_embeddings)
        rows = block_rows or max(1, (64 << 20) // (max(c.shape[0], 1) * q.dtype.itemsize))
        parts = [_core.bias_counts(block, a, *common) for a, block in score_blocks(q, c, rows)]
    per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return BiasReport(dataset, top_k, per["max_rank"], per["lang_min_rank"], per["top_counts"])
