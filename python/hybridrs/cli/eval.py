"""Command-line entry points: ``hybridrs-eval``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DEFAULT_DATA_DIR, is_beir_dir, load_beir, load_lareqa
from ..evaluation import EvalReport, evaluate
from ..evaluation.bias import BiasReport, bias_report

__all__ = ["eval_main"]

DEFAULT_DATA = f"{DEFAULT_DATA_DIR}/xquad-r"


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hybridrs-eval",
        description=(
            "Zero-shot evaluation of a multilingual retriever on LAReQA-format sets (XQuAD-R, "
            "MLQA-R): mAP for every mono- and cross-lingual language pair, pooled multilingual "
            "mAP, rank distance (language bias), recall@k. Prints the summary table and writes "
            "JSON and a heatmap PNG per data set."
        ),
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=[DEFAULT_DATA],
        help=f"LAReQA or BEIR-layout directories (default: {DEFAULT_DATA})",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--encoder",
        default="tfidf",
        help="'tfidf' (character n-gram baseline, default), 'default' (multilingual-e5-small, "
        "built offline from PyPI packages; use with --query_prefix 'query: ' --passage_prefix "
        "'passage: ') or a local transformers model directory",
    )
    src.add_argument(
        "--scores",
        type=Path,
        help="a precomputed .npy score matrix (questions x candidates); one --data",
    )
    p.add_argument("--languages", nargs="+", help="restrict to these language codes")
    p.add_argument(
        "--split",
        default="test",
        help="qrels split of BEIR / MIRACL-layout directories (corpus.jsonl, queries.jsonl, "
        "qrels/<split>.tsv), which are scored with nDCG@10 and recall@100 (default: test)",
    )
    p.add_argument(
        "--query_prefix",
        default=None,
        help="prefix of questions (e5 models: 'query: '; default: the model's own)",
    )
    p.add_argument(
        "--passage_prefix", default=None, help="prefix of candidates (e5 models: 'passage: ')"
    )
    p.add_argument(
        "--with_context",
        action="store_true",
        help="encode candidates as (sentence, context), as LAReQA's variant",
    )
    p.add_argument("--max_length", type=int, default=128, help="max tokens per text")
    p.add_argument("--batch_size", type=int, default=64, help="texts per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument(
        "--recall_at",
        type=int,
        nargs="+",
        default=[1, 10],
        help="cutoffs K of recall@K: share of a question's relevant candidates in the top K "
        "(default: 1 10)",
    )
    p.add_argument("--map_at", type=int, default=10, help="cutoff K of mAP@K (default: 10)")
    p.add_argument(
        "--map_norm",
        default="R",
        choices=["R", "min(k,R)"],
        help="normalisation of mAP@K: 'R' (relevant candidates, as trec_eval; default) or "
        "'min(k,R)'",
    )
    p.add_argument(
        "--output_dir",
        type=Path,
        default=Path("eval-out"),
        help="where the JSON reports and heatmaps go (default: eval-out)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    """``hybridrs-eval``: evaluates an encoder or a score matrix; returns the exit status."""
    parser = _eval_parser()
    args = parser.parse_args(argv)
    for name in ("batch_size", "max_length", "map_at"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: must be >= 1, got {getattr(args, name)}")
    if any(k < 1 for k in args.recall_at):
        parser.error(f"argument --recall_at: cutoffs must be >= 1, got {args.recall_at}")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        return _run_eval(args)
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"hybridrs-eval: error: {e}", file=sys.stderr)
        return 2


def _run_eval(args: argparse.Namespace) -> int:
    if args.scores is not None and len(args.data) != 1:
        raise ValueError("--scores: give exactly one --data set with a score matrix")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _run_sharded(args)
    progress = not args.no_progress
    from ..models import Encoder, TfidfEncoder, load_encoder

    encoder: TfidfEncoder | Encoder | None = None
    if args.scores is None:
        kwargs = {}
        if args.encoder != "tfidf":
            kwargs = {
                "query_prefix": args.query_prefix,
                "passage_prefix": args.passage_prefix,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "device": args.device,
            }
        encoder = load_encoder(args.encoder, **kwargs)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    opts = {"recall_at": args.recall_at, "map_at": args.map_at, "map_norm": args.map_norm}
    for path in args.data:
        if is_beir_dir(path):
            _run_graded(args, path, encoder, progress)
            continue
        ds = load_lareqa(path, languages=args.languages)
        t0 = time.perf_counter()
        scores = _score_matrix(args, encoder, ds, args.with_context, progress)
        if scores is not None:
            report = evaluate(ds, scores, **opts)
            bias = bias_report(ds, scores)
        else:
            if not isinstance(encoder, Encoder):  # pragma: no cover - set above
                raise ValueError("--encoder: no embedding encoder")
            q, c = encoder.embed(ds, args.with_context, progress)
            if str(encoder.device).startswith("cuda"):
                # score blocks on the GPU, counted by the Rust kernel (one process)
                from ..evaluation.sharded import evaluate_sharded

                report, bias = evaluate_sharded(
                    ds, q, c, device=encoder.device, progress=progress, **opts
                )
            else:
                report = evaluate(ds, q, c, progress=progress, **opts)
                bias = bias_report(ds, q, c)
        _write(args, path, report, bias, t0)
    return 0


def _score_matrix(
    args: argparse.Namespace, encoder: Any, ds: Any, with_context: bool, progress: bool
) -> np.ndarray | None:
    """The whole score matrix where there is one: read from ``--scores``, or TF-IDF's;
    ``None`` for embedding encoders (evaluated from their embeddings, block by block)."""
    from ..models import TfidfEncoder

    if args.scores is not None:
        return _load_scores(args.scores)
    if isinstance(encoder, TfidfEncoder):
        return encoder.scores(ds, with_context, progress)
    return None


def _run_graded(args: argparse.Namespace, path: str, encoder: Any, progress: bool) -> None:
    """A BEIR / MIRACL-layout directory: nDCG@10 and recall@100 (graded relevance, exact), and
    for embeddings the hnswlib index's top-10 recall against exact search."""
    from ..evaluation import evaluate_graded, hnsw_report

    ds = load_beir(path, split=args.split)
    if args.languages:
        ds = ds.subset(languages=args.languages)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"data": str(path), "split": args.split}
    scores = _score_matrix(args, encoder, ds, False, progress)
    if scores is not None:
        rep = evaluate_graded(ds, scores)
    else:
        q, c = encoder.embed(ds, False, progress)
        rep = evaluate_graded(ds, q, c, progress=progress)
        out["retrieval"] = hnsw_report(q, c, ds)
    out["summary"] = rep.summary()
    out["per_language"] = rep.per_language()
    s = out["summary"]
    print(
        f"{Path(path).name}: nDCG@10 {s['ndcg@10']:.4f}  recall@100 {s['recall@100']:.4f}  "
        f"({s['n_questions']} questions, {ds.n_candidates} passages, "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    if "retrieval" in out:
        r = out["retrieval"]["recall@10_vs_exact"]
        print(f"hnswlib top-10 recall against exact search: {r:.4f}")
    target = args.output_dir / f"{Path(path).name}-graded.json"
    target.write_text(json.dumps(out, indent=2))
    print(f"wrote {target}")


def _write(
    args: argparse.Namespace, path: str, report: EvalReport, bias: BiasReport, t0: float
) -> None:
    """Prints the tables and writes the JSON reports and heatmaps of one data set."""
    name = Path(path).name or "data"
    report.name = name
    print(report.table())
    b = bias.summary()
    print(
        f"language bias: Max@R {b['max@R']:.1f}  own-language first {b['own_first']:.3f}  "
        f"top-10 own-language share {b['top10_own_share']:.3f} "
        f"(pool share {b['own_pool_share']:.3f})"
    )
    print(f"({time.perf_counter() - t0:.1f} s)\n")
    out = args.output_dir
    report.to_json(out / f"{name}.json")
    report.plot(out / f"{name}.png")
    bias.to_json(out / f"{name}-bias.json")
    bias.heatmap(out / f"{name}-bias.png")
    print(f"wrote {out / name}.json, .png and {out / name}-bias.json, -bias.png")


def _run_sharded(args: argparse.Namespace) -> int:
    """Under torchrun: every rank encodes and holds a shard of the candidates (and a share of
    the questions) and the exact metrics come from counts summed across ranks
    (:mod:`hybridrs.evaluation.sharded`); rank 0 prints and writes."""
    if args.scores is not None or args.encoder == "tfidf":
        raise ValueError(
            "under torchrun the evaluation is sharded over the ranks and needs a neural encoder "
            "(--encoder default or a model directory); run --encoder tfidf or --scores in one "
            "process"
        )
    from ..evaluation.sharded import encode_sharded, evaluate_sharded, init_from_env
    from ..models import candidate_texts, load_encoder

    rank, size = init_from_env(args.device)
    device = args.device
    if device is None or device == "cuda":
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    progress = not args.no_progress and rank == 0
    encoder = load_encoder(
        args.encoder,
        query_prefix=args.query_prefix,
        passage_prefix=args.passage_prefix,
        max_length=args.max_length,
        batch_size=args.batch_size,
        device=device,
    )
    if rank == 0:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        print(f"sharded evaluation over {size} processes")
    for path in args.data:
        ds = load_lareqa(path, languages=args.languages)
        t0 = time.perf_counter()
        texts = candidate_texts(ds, args.with_context)
        q, c, _ = encode_sharded(encoder, ds, texts, progress)
        report, bias = evaluate_sharded(
            ds,
            q,
            c,
            recall_at=args.recall_at,
            map_at=args.map_at,
            map_norm=args.map_norm,
            progress=progress,
        )
        if rank == 0:
            _write(args, path, report, bias, t0)
    return 0


def _load_scores(path: Path) -> np.ndarray:
    """A score matrix from a ``.npy`` file, or a ValueError naming the file."""
    if path.is_dir():
        raise ValueError(f"--scores: {path} is a directory, not a .npy file")
    try:
        scores = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = e or "empty file"
        raise ValueError(f"--scores: cannot read {path} as a .npy array: {why}") from None
    if not isinstance(scores, np.ndarray):  # an .npz archive
        raise ValueError(
            f"--scores: {path} is an .npz archive; save the matrix with np.save (.npy)"
        )
    return np.asarray(scores)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(eval_main())
