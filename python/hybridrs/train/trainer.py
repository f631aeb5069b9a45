"""The trainer: set-up, the loop, checkpoints, evaluation before / during / after, outputs.

Everything it composes lives in its own module: settings (:mod:`.settings`), batches
(:mod:`.batches`), loss (:mod:`.loss`), checkpoints (:mod:`.checkpoint`), the model card
(:mod:`.model_card`); the encoder, data, sampler and evaluator come from the packages below.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import (
    RetrievalSet,
    eval_subset,
    load_lareqa,
    load_parallel_qa,
    split_validation,
)
from ..evaluation import EvalReport, evaluate, hnsw_report
from ..models import Encoder, cached_embeddings, resolve_model
from ..sampling import HybridBatchSampler, PairPool
from .batches import Collator, PairDataset
from .checkpoint import (
    find_checkpoint,
    fsync_tree,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .loss import info_nce
from .model_card import model_card
from .settings import TrainConfig

__all__ = ["Callback", "Trainer", "train"]

#: Called as ``callback(event, step, path)`` after each checkpoint is written (``event``
#: ``"checkpoint"``): for tests (a hard kill right after a checkpoint) and monitoring.
Callback = Callable[[str, int, Path], None]


class Trainer:
    """Runs one training: set-up, the loop, checkpoints, evaluation and outputs.

    Args:
        cfg: The settings (validated here again).
        callbacks: Called after every checkpoint as ``callback("checkpoint", step, path)``.
    """

    def __init__(self, cfg: TrainConfig, callbacks: Sequence[Callback] = ()) -> None:
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                "training needs the model extra: pip install 'hybridrs[model]'"
            ) from e
        cfg.validate()
        self.cfg = cfg
        self.callbacks = list(callbacks)
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
        self.encoder = Encoder.load(
            self.model_dir,
            query_prefix=cfg.query_prefix,
            passage_prefix=cfg.passage_prefix,
            max_length=cfg.eval_max_length,
            batch_size=cfg.eval_batch_size,
            device=self.device,
        )
        self.model = self.encoder.model  # the bare model; wrapped by DDP for the loop
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
            self.qa, self.validation = split_validation(
                self.qa, cfg.train_data, cfg.validation_split
            )
        self.pool = PairPool.from_parallel(self.qa)
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
        self._prepare_output_dir()

    # -- set-up helpers --------------------------------------------------------------------------
    def _check_output_dir(self) -> None:
        cfg = self.cfg
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"output_dir: {str(self.out)!r} is a file")
        if self.out.exists() and any(self.out.iterdir()):
            if cfg.resume_from_checkpoint is None and not cfg.overwrite_output_dir:
                raise ValueError(
                    f"output_dir: {str(self.out)!r} is not empty; pass --overwrite_output_dir, "
                    "or --resume_from_checkpoint last to continue"
                )

    def _prepare_output_dir(self) -> None:
        """Touches the disk only once every setting, the model and the data have been
        checked."""
        cfg = self.cfg
        if self.out.exists() and any(self.out.iterdir()):
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
        """Prints ``msg`` on the main process."""
        if self.main:
            print(msg, flush=True)

    # -- evaluation ----------------------------------------------------------------------------
    def _embed(self, ds: RetrievalSet, cached: bool) -> tuple[np.ndarray, np.ndarray]:
        def compute() -> tuple[np.ndarray, np.ndarray]:
            return self.encoder.embed(ds, progress=not self.cfg.no_progress)

        if not cached:
            return compute()
        e = self.encoder
        key = (
            f"{self._base_fingerprint()}|{ds.fingerprint()}|{e.max_length}|"
            f"{e.query_prefix}|{e.passage_prefix}|{e.pooling}|{e.normalize}"
        )
        return cached_embeddings(key, compute)

    def _base_fingerprint(self) -> str:
        w = self.model_dir / "model.safetensors"
        st = w.stat() if w.exists() else None
        return f"{self.model_dir.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}"

    def evaluate_all(self, tag: str, cached: bool, index_dir: Path | None = None) -> dict[str, Any]:
        """Evaluates on every eval set (rank 0 only); writes heatmaps (and the hnswlib
        indexes into ``index_dir``); returns the summaries."""
        results: dict[str, Any] = {}
        if not self.main:
            return results
        seen = set(self.qa.languages)
        c = self.cfg
        for name, full, ds in self._eval_sets():
            t0 = time.perf_counter()
            q, cand = self._embed(ds, cached)
            report = evaluate(ds, q, cand)
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

    def _eval_sets(self) -> list[tuple[str, RetrievalSet, RetrievalSet]]:
        """(name, full set, evaluated subset) of every eval set, loaded once per run."""
        if self._eval_cache is None:
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
    def save_checkpoint(
        self, step: int, epoch: int, consumed: int, optimizer: Any, scheduler: Any
    ) -> None:
        """Writes checkpoint-{step} atomically (main process) and runs the callbacks."""
        if not self.main:
            return
        path = save_checkpoint(
            self.out,
            step,
            self.model,
            optimizer,
            scheduler,
            {
                "epoch": epoch,
                "sampler": self.sampler.state_dict(steps_consumed=consumed),
                "config": self.cfg.to_dict(),
            },
            self.cfg.save_total_limit,
        )
        for cb in self.callbacks:
            cb("checkpoint", step, path)

    def load_checkpoint(self, optimizer: Any, scheduler: Any) -> tuple[int, int, int]:
        """Restores model, optimiser, scheduler, RNG and sampler; (step, epoch, consumed)."""
        path = find_checkpoint(self.out, str(self.cfg.resume_from_checkpoint))
        state = load_checkpoint(path, self.model, optimizer, scheduler, self.device)
        self.sampler.load_state_dict(state["sampler"])
        self.log(f"resumed from {path} at step {state['global_step']}")
        return (
            int(state["global_step"]),
            int(state["epoch"]),
            int(state["sampler"]["steps_consumed"]),
        )

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints in the output directory, oldest first."""
        return list_checkpoints(self.out)

    # -- the loop --------------------------------------------------------------------------------
    def _optimizer(self, total: int) -> tuple[Any, Any]:
        from transformers import get_linear_schedule_with_warmup

        cfg = self.cfg
        decay: list[Any] = []
        no_decay: list[Any] = []
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in n else decay).append(p)
        optimizer = self.torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.learning_rate,
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        return optimizer, scheduler

    def train(self) -> dict[str, Any]:
        """Evaluates, trains, evaluates, writes the outputs; returns the report."""
        torch = self.torch
        cfg = self.cfg
        before: dict[str, Any] = {}
        if not cfg.skip_eval_before and cfg.resume_from_checkpoint is None:
            before = self.evaluate_all("before", cached=True)
        from torch.utils.data import DataLoader

        dataset: Any = PairDataset(self.qa)
        loader: Any = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            collate_fn=Collator(self.encoder.tokenize, cfg.max_length, cfg.hard_negatives),
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
        optimizer, scheduler = self._optimizer(total)
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
            "pooling": self.encoder.pooling,
            "sampler": self.sampler.epoch_stats,
        }
        staging = self.out / ".tmp-model"
        if self.main:
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir()
        after = self.evaluate_all("after", cached=False, index_dir=staging)
        report = {
            "config": cfg.to_dict(),
            "before": before,
            "after": after,
            "train": train_info,
        }
        if self.main:
            self._save_outputs(report, staging)
        self._barrier()
        return report

    def _loss(self, model: Any, batch: dict[str, Any]) -> Any:
        torch = self.torch
        dev = self.device
        batch = {k: {kk: vv.to(dev) for kk, vv in v.items()} for k, v in batch.items()}
        parts = [batch["q"], batch["p"]] + ([batch["n"]] if "n" in batch else [])
        forward = self.encoder.forward
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.world_size > 1:
                # DDP wants one forward per backward: pad the parts to one length, one pass.
                width = max(x["input_ids"].shape[1] for x in parts)
                pad = self.encoder.tokenize.tokenizer.pad_token_id or 0

                def widen(x: Any, value: int) -> Any:
                    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

                joint = {
                    "input_ids": torch.cat([widen(x["input_ids"], pad) for x in parts]),
                    "attention_mask": torch.cat([widen(x["attention_mask"], 0) for x in parts]),
                }
                embs = list(
                    torch.split(forward(joint, model), [x["input_ids"].shape[0] for x in parts])
                )
            else:
                embs = [forward(x, model) for x in parts]
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

    def _save_outputs(self, report: dict[str, Any], staging: Path) -> None:
        """The final model like a checkpoint: written into ``staging`` (which already holds
        the hnswlib indexes), fsynced, then renamed to ``model/``; report.json replaced
        atomically."""
        final = self.out / "model"
        self.encoder.save(staging)
        (staging / "README.md").write_text(model_card(report, self.qa))
        fsync_tree(staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        tmp = self.out / ".tmp-report.json"
        tmp.write_text(json.dumps(report, indent=2, default=_jsonable))
        os.replace(tmp, self.out / "report.json")
        self.log(f"wrote {final}, {self.out / 'report.json'} and the heatmaps in {self.out}")


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


def train(cfg: TrainConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Runs one training with ``cfg`` and returns the report dictionary."""
    return Trainer(cfg, callbacks).train()
