"""The results of an evaluation: :class:`EvalReport` (per-setting means, counts, summaries,
tables, JSON). Computed by :func:`hybridrs.evaluation.evaluate`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EvalReport"]


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
        """Writes :meth:`to_dict` as JSON (creating the parent directory)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Writes a PNG heatmap (see :func:`hybridrs.evaluation.plots.heatmap`)."""
        from .plots import heatmap

        heatmap(self, path, title)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"EvalReport({self.name!r}, mono={s['mono']:.4f}, cross={s['cross']:.4f}, "
            f"multi={s['multi']:.4f}, rank_distance={s['rank_distance']:.1f})"
        )
