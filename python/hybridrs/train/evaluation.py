"""Evaluation during a training run: every eval set (and the validation split) encoded with
the run's encoder, scored exactly, the heatmaps and hnswlib indexes written, summaries
returned and printed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import RetrievalSet, eval_subset, load_lareqa
from ..evaluation import EvalReport, evaluate, hnsw_report
from ..evaluation.details import question_results, write_results
from ..evaluation.sharded import encode_sharded, evaluate_sharded, gather_rows, world
from ..models import Encoder, cached_embeddings, candidate_texts
from .settings import TrainConfig

__all__ = ["RunEvaluator"]


class RunEvaluator:
    """Evaluates a run's encoder on its eval sets.

    Args:
        cfg: The run's settings (eval sets, subsets, hnswlib settings).
        encoder: The encoder being trained.
        out: Where the heatmaps go.
        on_cpu: Whether evaluation runs on a CPU (decides the ``"auto"`` subset).
        seen_languages: The training languages (the report lists unseen ones apart).
        validation: The held-out validation set, if any.
        base_fingerprint: Identifies the untrained weights (key of the embedding cache).
        log: Prints a line.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        encoder: Encoder,
        out: Path,
        on_cpu: bool,
        seen_languages: set[str],
        validation: RetrievalSet | None,
        base_fingerprint: str,
        log: Callable[[str], None],
    ) -> None:
        self.cfg = cfg
        self.encoder = encoder
        self.out = out
        self.on_cpu = on_cpu
        self.seen = seen_languages
        self.validation = validation
        self.base_fingerprint = base_fingerprint
        self.log = log
        self._sets: list[tuple[str, RetrievalSet, RetrievalSet]] | None = None
        #: Embeddings of an eval set with the current weights, computed elsewhere (WiSE-FT's
        #: chosen lambda), keyed by ``id(set)``: used once by the next evaluation instead of
        #: encoding the set again.
        self.encoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _embed(self, ds: RetrievalSet, cached: bool) -> tuple[np.ndarray, np.ndarray]:
        if id(ds) in self.encoded:
            return self.encoded.pop(id(ds))

        def compute() -> tuple[np.ndarray, np.ndarray]:
            return self.encoder.embed(ds, progress=not self.cfg.no_progress)

        if not cached:
            return compute()
        e = self.encoder
        key = (
            f"{self.base_fingerprint}|{ds.fingerprint()}|{e.max_length}|"
            f"{e.query_prefix}|{e.passage_prefix}|{e.pooling}|{e.normalize}"
        )
        return cached_embeddings(key, compute)

    def evaluate_all(
        self,
        tag: str,
        cached: bool,
        index_dir: Path | None = None,
        results_dir: Path | None = None,
    ) -> dict[str, Any]:
        """Evaluates on every eval set; writes heatmaps (the hnswlib indexes into ``index_dir``,
        each set's per-question results into ``results_dir`` as ``results_<set>.parquet``,
        :func:`hybridrs.evaluation.details.question_results`); returns the summaries.
        ``cached``: the untrained model's embeddings may come from (and go to) the embedding
        cache. Under torchrun every rank must call it:
        encoding and exact evaluation are sharded over the ranks
        (:mod:`hybridrs.evaluation.sharded`); rank 0 gathers the candidates for the hnswlib
        index, writes and returns the results (the other ranks return ``{}``)."""
        results: dict[str, Any] = {}
        seen = self.seen
        c = self.cfg
        rank, size = world()
        for name, full, ds in self.eval_sets():
            t0 = time.perf_counter()
            if size > 1:
                # under torchrun: every rank encodes a shard, exact metrics from summed counts
                q, local, _ = encode_sharded(
                    self.encoder,
                    ds,
                    candidate_texts(ds),
                    progress=not self.cfg.no_progress and rank == 0,
                )
                report, _ = evaluate_sharded(ds, q, local)
                cand = gather_rows(local, ds.n_candidates, to_rank=0)
                if rank != 0 or cand is None:
                    continue
            else:
                q, cand = self._embed(ds, cached)
                report = evaluate(ds, q, cand)
            if results_dir is not None:  # for paired comparisons without re-encoding
                table = question_results(ds, q, cand)
                write_results(table, results_dir / f"results_{name}.parquet")
            report.name = f"{name} ({tag})"
            report.plot(self.out / f"heatmap_{name}_{tag}.png")
            langs = list(ds.languages)
            results[name] = {
                "summary": report.summary(),
                "seen_languages": report.per_language([x for x in langs if x in seen]),
                "unseen_languages": report.per_language([x for x in langs if x not in seen]),
                "unseen": [x for x in langs if x not in seen],
                "n_questions": ds.n_questions,
                "n_candidates": ds.n_candidates,
                "subset": "full set"
                if ds.n_questions == full.n_questions
                else f"{ds.n_questions} of {full.n_questions} questions",
                "retrieval": hnsw_report(
                    q,
                    cand,
                    ds,
                    m=c.hnsw_m,
                    ef_construction=c.hnsw_ef_construction,
                    ef_search=c.hnsw_ef_search,
                    exact_search_below=c.exact_search_below,
                    seed=c.seed,
                    save_to=index_dir / f"hnsw-{name}.bin" if index_dir is not None else None,
                ),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            self._print_eval(name, tag, report, results[name])
        return results

    def eval_sets(self) -> list[tuple[str, RetrievalSet, RetrievalSet]]:
        """(name, full set, evaluated subset) of every eval set, loaded once per run."""
        if self._sets is None:
            c = self.cfg
            sets = []
            for path in c.eval_data:
                full = load_lareqa(path)
                sub = eval_subset(
                    full,
                    c.eval_languages,
                    c.eval_articles,
                    c.eval_max_questions_per_language,
                    self.on_cpu,
                )
                sets.append((Path(path).name, full, sub))
            if self.validation is not None:
                sets.append(("validation", self.validation, self.validation))
            self._sets = sets
        return self._sets

    def _print_eval(self, name: str, tag: str, report: EvalReport, r: dict[str, Any]) -> None:
        s = r["summary"]
        self.log(
            f"[{tag}] {name} ({r['subset']}): mono {s['mono']:.4f}  cross {s['cross']:.4f}"
            f"  multi {s['multi']:.4f}  rank distance {s['rank_distance']:.1f}  "
            f"({r['seconds']} s)"
        )
