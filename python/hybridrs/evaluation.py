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

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .data import RetrievalSet

__all__ = ["EvalReport", "evaluate"]

_PER_QUERY_KEYS = (
    "ap",
    "ap_at_k",
    "recall",
    "rank_distance",
    "lang_ap",
    "lang_ap_at_k",
    "lang_recall",
)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


class EvalReport:
    """Results of :func:`evaluate`: per-setting means, question counts and per-question values.

    Attributes:
        languages: Language codes, in matrix order.
        recall_at: Recall cutoffs.
        map_at: Cutoff of mAP@K; ``map_norm`` its normalisation (``"R"`` or ``"min(k,R)"``).
        pair_map, pair_map_at_k, pair_n: ``L x L`` matrices (query language x candidate
            language); ``pair_recall`` is ``L x L x len(recall_at)``.
        multi_map, multi_map_at_k, multi_n, rank_distance_by_lang: per query language;
            ``multi_recall`` is ``L x len(recall_at)``.
        multi_micro: pooled mAP over all questions (LAReQA's reference figure).
        per_query: per-question arrays (``ap``, ``rank_distance``, ``lang_ap`` ...) when kept.
    """

    def __init__(
        self,
        languages: Sequence[str],
        agg: dict[str, Any],
        recall_at: Sequence[int] = (1, 10),
        map_at: int = 10,
        map_norm: str = "R",
        per_query: dict[str, np.ndarray] | None = None,
        name: str = "",
    ) -> None:
        n_l = len(languages)
        n_k = len(recall_at)
        self.languages: tuple[str, ...] = tuple(languages)
        self.recall_at = tuple(int(k) for k in recall_at)
        self.map_at = int(map_at)
        self.map_norm = map_norm
        self.name = name
        self.pair_n = np.asarray(agg["pair_n"], dtype=np.int64).reshape(n_l, n_l)
        self.pair_map = np.asarray(agg["pair_map"], dtype=np.float64).reshape(n_l, n_l)
        self.pair_map_at_k = np.asarray(agg["pair_map_at_k"], dtype=np.float64).reshape(n_l, n_l)
        self.pair_recall = np.asarray(agg["pair_recall"], dtype=np.float64).reshape(n_l, n_l, n_k)
        self.multi_n = np.asarray(agg["multi_n"], dtype=np.int64).reshape(n_l)
        self.multi_map = np.asarray(agg["multi_map"], dtype=np.float64).reshape(n_l)
        self.multi_map_at_k = np.asarray(agg["multi_map_at_k"], dtype=np.float64).reshape(n_l)
        self.multi_recall = np.asarray(agg["multi_recall"], dtype=np.float64).reshape(n_l, n_k)
        self.rank_distance_by_lang = np.asarray(agg["rank_distance"], dtype=np.float64).reshape(n_l)
        self.multi_micro = float(agg["multi_micro"])
        self.per_query = per_query

    # -- settings ------------------------------------------------------------------------------
    def _pairs(self, mono: bool) -> dict[tuple[str, str], float]:
        out = {}
        for i, lq in enumerate(self.languages):
            for j, lc in enumerate(self.languages):
                if (i == j) == mono and self.pair_n[i, j] > 0:
                    out[(lq, lc)] = float(self.pair_map[i, j])
        return out

    @property
    def mono(self) -> dict[tuple[str, str], float]:
        """mAP of each monolingual setting ``(l, l)`` that has questions."""
        return self._pairs(True)

    @property
    def cross(self) -> dict[tuple[str, str], float]:
        """mAP of each cross-lingual setting ``(lq, lc)``, ``lq != lc``, that has questions."""
        return self._pairs(False)

    @property
    def multi(self) -> dict[str, float]:
        """Pooled (multilingual) mAP per query language."""
        return {
            lq: float(self.multi_map[i])
            for i, lq in enumerate(self.languages)
            if self.multi_n[i] > 0
        }

    @property
    def rank_distance(self) -> dict[str, float]:
        """Mean rank distance per query language (the language-bias metric)."""
        return {
            lq: float(self.rank_distance_by_lang[i])
            for i, lq in enumerate(self.languages)
            if self.multi_n[i] > 0
        }

    def n_questions(self, lq: str, lc: str | None = None) -> int:
        """Questions in the setting ``(lq, lc)``, or in the pooled setting of ``lq``."""
        i = self.languages.index(lq)
        if lc is None:
            return int(self.multi_n[i])
        return int(self.pair_n[i, self.languages.index(lc)])

    def recall(self, k: int) -> dict[str, Any]:
        """Recall@k of every setting: ``{"pairs": {(lq, lc): r}, "multi": {lq: r}}``."""
        if k not in self.recall_at:
            raise ValueError(f"k: recall was computed at {list(self.recall_at)}, not {k}")
        ki = self.recall_at.index(k)
        pairs = {
            (lq, lc): float(self.pair_recall[i, j, ki])
            for i, lq in enumerate(self.languages)
            for j, lc in enumerate(self.languages)
            if self.pair_n[i, j] > 0
        }
        multi = {
            lq: float(self.multi_recall[i, ki])
            for i, lq in enumerate(self.languages)
            if self.multi_n[i] > 0
        }
        return {"pairs": pairs, "multi": multi}

    # -- summaries -----------------------------------------------------------------------------
    def summary(self) -> dict[str, float | int]:
        """Macro averages as in the paper, plus the micro pooled mAP.

        Keys: ``mono`` / ``cross`` (mean over language pairs), ``multi`` and
        ``rank_distance`` (mean over query languages), ``multi_micro`` (mean over all
        questions, as LAReQA's reference code reports), ``n_mono`` / ``n_cross`` (number of
        settings averaged), and ``{mono,cross,multi}_map@K`` / ``..._recall@K``.
        """
        mono_mask = np.eye(len(self.languages), dtype=bool) & (self.pair_n > 0)
        cross_mask = ~np.eye(len(self.languages), dtype=bool) & (self.pair_n > 0)
        multi_mask = self.multi_n > 0
        out: dict[str, float | int] = {
            "mono": _mean(self.pair_map[mono_mask].tolist()),
            "cross": _mean(self.pair_map[cross_mask].tolist()),
            "multi": _mean(self.multi_map[multi_mask].tolist()),
            "rank_distance": _mean(self.rank_distance_by_lang[multi_mask].tolist()),
            "multi_micro": self.multi_micro,
            "n_mono": int(mono_mask.sum()),
            "n_cross": int(cross_mask.sum()),
        }
        k = self.map_at
        out[f"mono_map@{k}"] = _mean(self.pair_map_at_k[mono_mask].tolist())
        out[f"cross_map@{k}"] = _mean(self.pair_map_at_k[cross_mask].tolist())
        out[f"multi_map@{k}"] = _mean(self.multi_map_at_k[multi_mask].tolist())
        for ki, kk in enumerate(self.recall_at):
            out[f"mono_recall@{kk}"] = _mean(self.pair_recall[mono_mask, ki].tolist())
            out[f"cross_recall@{kk}"] = _mean(self.pair_recall[cross_mask, ki].tolist())
            out[f"multi_recall@{kk}"] = _mean(self.multi_recall[multi_mask, ki].tolist())
        return out

    def per_language(self, languages: Sequence[str] | None = None) -> dict[str, float]:
        """Macro averages restricted to settings whose languages all lie in ``languages``."""
        keep = set(self.languages if languages is None else languages)
        idx = [i for i, lang in enumerate(self.languages) if lang in keep]
        mono = [self.pair_map[i, i] for i in idx if self.pair_n[i, i] > 0]
        cross = [self.pair_map[i, j] for i in idx for j in idx if i != j and self.pair_n[i, j] > 0]
        multi = [self.multi_map[i] for i in idx if self.multi_n[i] > 0]
        rd = [self.rank_distance_by_lang[i] for i in idx if self.multi_n[i] > 0]
        return {
            "mono": _mean(mono),
            "cross": _mean(cross),
            "multi": _mean(multi),
            "rank_distance": _mean(rd),
        }

    def table(self) -> str:
        """A plain-text summary table: the mAP matrix, then the pooled columns."""
        langs = self.languages
        w = 7
        lines = [f"{self.name or 'evaluation'}: mAP, query language (rows) x candidate language"]
        lines.append(
            "".ljust(5)
            + "".join(lc.rjust(w) for lc in langs)
            + "multi".rjust(w + 1)
            + "rankd".rjust(w + 1)
            + "n".rjust(w)
        )

        def fmt(v: float, n: int) -> str:
            return ("-" if n == 0 or math.isnan(v) else f"{v:.3f}").rjust(w)

        for i, lq in enumerate(langs):
            row = "".join(
                fmt(self.pair_map[i, j], int(self.pair_n[i, j])) for j in range(len(langs))
            )
            rd = self.rank_distance_by_lang[i]
            lines.append(
                lq.ljust(5)
                + row
                + " "
                + fmt(self.multi_map[i], int(self.multi_n[i]))
                + " "
                + ("-" if self.multi_n[i] == 0 else f"{rd:.1f}").rjust(w)
                + str(int(self.multi_n[i])).rjust(w)
            )
        s = self.summary()
        lines.append(
            f"mono {s['mono']:.4f} ({s['n_mono']} settings)  cross {s['cross']:.4f} "
            f"({s['n_cross']})  multi {s['multi']:.4f}  multi(micro) {s['multi_micro']:.4f}  "
            f"rank distance {s['rank_distance']:.1f}"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: summary, every setting with its counts, the settings used."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        settings = []
        for i, lq in enumerate(self.languages):
            for j, lc in enumerate(self.languages):
                if self.pair_n[i, j] == 0:
                    continue
                d: dict[str, Any] = {
                    "query_lang": lq,
                    "candidate_lang": lc,
                    "kind": "mono" if i == j else "cross",
                    "n": int(self.pair_n[i, j]),
                    "map": clean(self.pair_map[i, j]),
                    f"map@{self.map_at}": clean(self.pair_map_at_k[i, j]),
                }
                for ki, kk in enumerate(self.recall_at):
                    d[f"recall@{kk}"] = clean(self.pair_recall[i, j, ki])
                settings.append(d)
        multi = []
        for i, lq in enumerate(self.languages):
            if self.multi_n[i] == 0:
                continue
            d = {
                "query_lang": lq,
                "n": int(self.multi_n[i]),
                "map": clean(self.multi_map[i]),
                f"map@{self.map_at}": clean(self.multi_map_at_k[i]),
                "rank_distance": clean(self.rank_distance_by_lang[i]),
            }
            for ki, kk in enumerate(self.recall_at):
                d[f"recall@{kk}"] = clean(self.multi_recall[i, ki])
            multi.append(d)
        return {
            "name": self.name,
            "languages": list(self.languages),
            "summary": {
                k: (clean(v) if isinstance(v, float) else v) for k, v in self.summary().items()
            },
            "pairs": settings,
            "multi": multi,
            "options": {
                "recall_at": list(self.recall_at),
                "map_at": self.map_at,
                "map_norm": self.map_norm,
            },
        }

    def to_json(self, path: str | Path) -> None:
        """Writes :meth:`to_dict` as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Writes a PNG heatmap: the query x candidate language mAP matrix, and the pooled
        (multilingual) mAP column beside it, so the language structure shows at a glance."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n_l = len(self.languages)
        mat = np.where(self.pair_n > 0, self.pair_map, np.nan)
        col = np.where(self.multi_n > 0, self.multi_map, np.nan)[:, None]
        cell = 0.5
        fig = plt.figure(figsize=(cell * (n_l + 4.5) + 1.5, cell * n_l + 1.6))
        grid = fig.add_gridspec(1, 3, width_ratios=[n_l, 2.6, 0.35], wspace=0.08)
        ax, ax2, cax = (fig.add_subplot(grid[0, i]) for i in range(3))
        cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
        im = ax.imshow(mat, vmin=0, vmax=1, cmap=cmap)
        ax.set_xticks(range(n_l), self.languages)
        ax.set_yticks(range(n_l), self.languages)
        ax.set_xlabel("candidate language")
        ax.set_ylabel("question language")

        def label(axis: Any, x: int, y: int, v: float) -> None:
            axis.text(
                x,
                y,
                f"{v * 100:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < 0.6 else "black",
            )

        for i in range(n_l):
            for j in range(n_l):
                if not np.isnan(mat[i, j]):
                    label(ax, j, i, mat[i, j])
        # The pooled column, same row height, with the rank distance written beside it.
        ax2.imshow(col, vmin=0, vmax=1, cmap=cmap, extent=(-0.5, 0.5, n_l - 0.5, -0.5))
        ax2.set_xlim(-0.5, 2.1)
        ax2.set_xticks([0, 1.3], ["multi", "rank dist."], fontsize=8)
        ax2.set_yticks([])
        for side in ("top", "right", "bottom", "left"):
            ax2.spines[side].set_visible(False)
        for i in range(n_l):
            if not np.isnan(col[i, 0]):
                label(ax2, 0, i, col[i, 0])
                ax2.text(
                    1.3,
                    i,
                    f"{self.rank_distance_by_lang[i]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
        fig.colorbar(im, cax=cax, label="mAP")
        s = self.summary()
        fig.suptitle(
            title
            or f"{self.name} mAP x100: mono {s['mono']:.3f}, cross {s['cross']:.3f}, "
            f"multi {s['multi']:.3f}, rank distance {s['rank_distance']:.0f}",
            fontsize=9,
        )
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"EvalReport({self.name!r}, mono={s['mono']:.4f}, cross={s['cross']:.4f}, "
            f"multi={s['multi']:.4f}, rank_distance={s['rank_distance']:.1f})"
        )


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


_BACKENDS = ("auto", "fused", "blocked")


def _choose_backend(backend: str, dtype: np.dtype[Any]) -> bool:
    """Whether the embeddings form runs fused (True) or blocked (False)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend: must be one of {_BACKENDS}, got {backend!r}")
    can = _core.fused_available()
    if backend == "fused":
        if not can:
            raise ValueError(
                "backend: 'fused' needs a CPU with AVX-512F and FMA; use 'blocked' or 'auto'"
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
      With float32 embeddings on a CPU with AVX-512 (``backend="fused"``, chosen by
      ``"auto"``), Rust computes the scores tile by tile and counts them while they are in
      cache, in about the time of the bare matmul; otherwise (``backend="blocked"``) numpy
      multiplies blocks of rows (BLAS) and hands each block to the Rust kernel. Both give the
      exact metrics of the scores they compute; the two score sums may differ in the last bit
      (summation order), as any two BLAS calls may.

    Args:
        dataset: The retrieval set (see :func:`hybridrs.load_lareqa`).
        recall_at: Cutoffs of recall@K (share of a question's relevant candidates ranked in
            the top K, rank = 1 + number scored strictly higher).
        map_at: Cutoff of mAP@K.
        map_norm: ``"R"`` (divide by the number of relevant candidates, as trec_eval) or
            ``"min(k,R)"``.
        block_rows: Rows per block in the embeddings form (default: about 64 MB of scores for
            the blocked backend; all rows in one call for the fused one, or 20 steps with a
            progress bar).
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
    recall_at = [int(k) for k in recall_at]
    if any(k < 1 for k in recall_at):
        raise ValueError(f"recall_at: cutoffs must be >= 1, got {recall_at}")
    if int(map_at) < 1:
        raise ValueError(f"map_at: cutoff must be >= 1, got {map_at}")
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
        scores = _float_matrix(scores_or_queries, "scores")
        _check_rows(scores, nq, "scores", "questions")
        if scores.shape[1] != nc:
            raise ValueError(
                f"scores: has {scores.shape[1]} columns but the data set has {nc} candidates"
            )
        per = _core.query_metrics(np.ascontiguousarray(scores), 0, *common)
    else:
        q = _float_matrix(scores_or_queries, "query_embeddings")
        c = _float_matrix(candidate_embeddings, "candidate_embeddings")
        _check_rows(q, nq, "query_embeddings", "questions")
        _check_rows(c, nc, "candidate_embeddings", "candidates")
        if q.shape[1] != c.shape[1]:
            raise ValueError(
                f"candidate_embeddings: dimension {c.shape[1]} differs from "
                f"query_embeddings' {q.shape[1]}"
            )
        dtype = np.result_type(q.dtype, c.dtype)
        use_fused = _choose_backend(backend, dtype)
        q = np.ascontiguousarray(q, dtype=dtype)
        c = np.ascontiguousarray(c, dtype=dtype)
        if use_fused:
            default_rows = nq if not progress else max(1, -(-nq // 20))
        else:
            default_rows = max(1, (64 << 20) // (max(nc, 1) * q.dtype.itemsize))
        rows = block_rows or default_rows
        starts = range(0, nq, rows)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="scoring", unit="block")
        parts: list[dict[str, np.ndarray]] = []
        if use_fused:
            for a in starts:
                b = min(a + rows, nq)
                parts.append(_core.query_metrics_embeddings(q[a:b], c, a, *common))
        else:
            ct = c.T
            buf = np.empty((min(rows, nq), nc), dtype=dtype)
            for a in starts:
                b = min(a + rows, nq)
                block = buf[: b - a]
                np.matmul(q[a:b], ct, out=block)
                parts.append(_core.query_metrics(block, a, *common))
        per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    agg = _core.aggregate(
        dataset.question_lang,
        len(dataset.languages),
        len(recall_at),
        *(per[k] for k in _PER_QUERY_KEYS),
    )
    return EvalReport(
        dataset.languages,
        agg,
        recall_at=recall_at,
        map_at=int(map_at),
        map_norm=map_norm,
        per_query=per if keep_per_query else None,
        name=dataset.name,
    )
