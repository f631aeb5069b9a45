"""The trainer: set-up, the loop, checkpoints, evaluation before / during / after, outputs.

Everything it composes lives in its own module: settings (:mod:`.settings`), batches
(:mod:`.batches`), loss (:mod:`.loss`), checkpoints (:mod:`.checkpoint`), the model card
(:mod:`.model_card`); the encoder, data, sampler and evaluator come from the packages below.

Why over 400 lines: what is left is the one thing that has to see everything at once, the
training loop with its set-up order (settings, model, data, sampler, output directory), DDP,
gradient accumulation, checkpoint/resume bookkeeping and the final atomic save; splitting it
further would pass a dozen pieces of state between files.
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

from ..data import RetrievalSet, load_parallel_qa, split_validation
from ..models import Encoder, cached_embeddings, resolve_model
from ..sampling import HybridBatchSampler, PairPool, temperature_weights
from .batches import Collator, PairDataset
from .checkpoint import (
    find_checkpoint,
    fsync_tree,
    load_checkpoint,
    save_checkpoint,
)
from .evaluation import RunEvaluator
from .lora import add_lora, merge_lora
from .loss import info_nce
from .model_card import model_card
from .negatives import mine_own_language_negatives
from .outputs import (
    LOCK_NAME,
    OutputLock,
    remove_own_entries,
    truncate_metrics,
    writing,
)
from .regularizers import L2SP, Distiller
from .settings import TrainConfig, changed_settings
from .wise import wise_ft

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
            try:
                self.device = torch.device(cfg.device)
            except RuntimeError as e:
                raise ValueError(f"device: {cfg.device!r} is not a torch device ({e})") from None
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(
                    f"device: {cfg.device!r} was asked for, but no CUDA GPU is available here; "
                    "use --device cpu or auto"
                )
        if self.world_size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        self.on_cpu = self.device.type == "cpu"
        self.out = Path(cfg.output_dir)
        self.main = self.rank == 0
        self._lock: OutputLock | None = None
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
        # What keeps the model near its pre-trained self (all taken from the base weights,
        # before any checkpoint is loaded): WiSE-FT's base state, the distillation teacher.
        self.lambdas = cfg.wise_ft_lambdas()
        self.base_state = (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.lambdas
            else None
        )
        self.distiller = (
            Distiller(self.encoder, cfg.distill_weight, cfg.temperature)
            if cfg.distill_weight > 0
            else None
        )
        if cfg.lora_r > 0:
            self.model = add_lora(
                self.model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules
            )
            self.encoder.model = self.model
        self.l2sp = L2SP(self.model, cfg.l2sp_weight) if cfg.l2sp_weight > 0 else None
        self.qa = load_parallel_qa(cfg.train_data, languages=cfg.train_languages)
        self.validation: RetrievalSet | None = None
        if cfg.validation_split > 0:
            self.qa, self.validation = split_validation(
                self.qa, cfg.train_data, cfg.validation_split
            )
        self.pool = PairPool.from_parallel(self.qa)
        self.sampler = self._sampler()
        self.mined: list[list[int]] | None = None
        self._check_eval_on_train()
        self.changed_on_resume: dict[str, tuple[Any, Any]] = {}
        self.evaluator = RunEvaluator(
            cfg,
            self.encoder,
            self.out,
            self.on_cpu,
            set(self.qa.languages),
            self.validation,
            self._base_fingerprint(),
            self.log,
        )
        if self.main:
            self.evaluator.eval_sets()  # every eval set read (and checked) before the disk
        self._prepare_output_dir()

    def _sampler(self) -> HybridBatchSampler:
        """The hybrid sampler: per-language temperature weights, and the alpha schedule over
        the run's sampler steps (known once the steps of an epoch are)."""
        cfg = self.cfg
        weights = None
        if cfg.language_temperature > 0:
            rows = self.pool.stats()["rows_per_language"]
            weights = temperature_weights(rows, cfg.language_temperature)
            self.log(
                "language weights (temperature "
                f"{cfg.language_temperature:g}): "
                + ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
            )
        common: dict[str, Any] = {
            "alpha": cfg.effective_alpha,
            "seed": cfg.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "language_weights": weights,
        }
        sampler = HybridBatchSampler(self.pool, cfg.per_device_train_batch_size, **common)
        if cfg.alpha_schedule == "constant":
            return sampler
        total = self._total_steps(len(sampler)) * cfg.gradient_accumulation_steps
        return HybridBatchSampler(
            self.pool,
            cfg.per_device_train_batch_size,
            alpha_schedule=cfg.alpha_schedule,
            alpha_end=cfg.alpha_end,
            total_steps=total,
            **common,
        )

    def _total_steps(self, sampler_steps: int) -> int:
        """Optimiser steps of the run, from the sampler's steps per epoch."""
        cfg = self.cfg
        steps_per_epoch = sampler_steps // cfg.gradient_accumulation_steps
        if steps_per_epoch < 1:
            raise ValueError("gradient_accumulation_steps: larger than the batches of an epoch")
        if cfg.max_steps > 0:
            return cfg.max_steps
        return math.ceil(cfg.num_train_epochs * steps_per_epoch)

    def _mine_negatives(self) -> list[list[int]]:
        """Own-language hard negatives of every training question, mined once from the base
        model (its embeddings of the training texts cached like the eval sets')."""
        import hashlib

        cfg, enc, qa = self.cfg, self.encoder, self.qa
        uq = list(dict.fromkeys(qa.questions))
        up = list(dict.fromkeys(qa.passages))
        h = hashlib.sha256("\x00".join([*uq, "\x01", *up]).encode()).hexdigest()[:20]
        key = (
            f"mine|{self._base_fingerprint()}|{h}|{cfg.max_length}|{enc.query_prefix}|"
            f"{enc.passage_prefix}|{enc.pooling}|{enc.normalize}"
        )
        self.log(f"mining {cfg.mine_hard_negatives} own-language hard negatives per question")
        progress = not cfg.no_progress and self.main

        def compute() -> tuple[np.ndarray, np.ndarray]:
            return (
                enc.encode(uq, enc.query_prefix, progress, "mining: questions", cfg.max_length),
                enc.encode(up, enc.passage_prefix, progress, "mining: passages", cfg.max_length),
            )

        qe, pe = cached_embeddings(key, compute)
        qi = {t: i for i, t in enumerate(uq)}
        pi = {t: i for i, t in enumerate(up)}

        def embed(texts: list[str], kind: str) -> np.ndarray:
            if kind == "query":
                return qe[[qi[t] for t in texts]]
            return pe[[pi[t] for t in texts]]

        mined = mine_own_language_negatives(qa, embed, cfg.mine_hard_negatives, seed=cfg.seed)
        found = sum(len(m) for m in mined)
        self.log(f"mined {found} negatives for {len(mined)} questions")
        return mined

    # -- set-up helpers --------------------------------------------------------------------------
    def _check_output_dir(self) -> None:
        """Refuses a non-empty output directory unless resuming or overwriting (reads only)."""
        cfg = self.cfg
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"output_dir: {str(self.out)!r} is a file")
        if self.out.exists() and any(p.name != LOCK_NAME for p in self.out.iterdir()):
            if cfg.resume_from_checkpoint is None and not cfg.overwrite_output_dir:
                raise ValueError(
                    f"output_dir: {str(self.out)!r} is not empty; pass --overwrite_output_dir, "
                    "or --resume_from_checkpoint last to continue"
                )

    def _prepare_output_dir(self) -> None:
        """Touches the disk only once every setting, the model and the data have been
        checked: creates the directory, takes its lock (a second run gets an error), and
        under overwrite removes the files an earlier run wrote there, nothing else."""
        cfg = self.cfg
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock = OutputLock(self.out)
            self._lock.acquire()
            if cfg.overwrite_output_dir and cfg.resume_from_checkpoint is None:
                removed = remove_own_entries(self.out)
                if removed:
                    self.log(f"overwrite: removed {', '.join(removed)} from {self.out}")
        self._barrier()

    def release(self) -> None:
        """Releases the output directory's lock (done at the end of :meth:`train`)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _check_eval_on_train(self) -> None:
        train = Path(self.cfg.train_data).resolve()
        for e in self.cfg.eval_data:
            if Path(e).resolve() == train and not self.cfg.allow_eval_on_train:
                raise ValueError(
                    f"eval_data: {e!r} is also the training data; results here are zero-shot. "
                    "Pass --allow_eval_on_train to do it anyway"
                )

    def _base_fingerprint(self) -> str:
        w = self.model_dir / "model.safetensors"
        st = w.stat() if w.exists() else None
        return f"{self.model_dir.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}"

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
    def evaluate_all(
        self,
        tag: str,
        cached: bool,
        index_dir: Path | None = None,
        results_dir: Path | None = None,
    ) -> dict[str, Any]:
        """Evaluates on every eval set (sharded over the ranks under torchrun, results on the
        main process); see :class:`RunEvaluator`."""
        if self.world_size > 1:  # every rank takes part (sharded); rank 0 gets the results
            return self.evaluator.evaluate_all(tag, cached, index_dir, results_dir)
        if not self.main:
            return {}
        return self.evaluator.evaluate_all(tag, cached, index_dir, results_dir)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(
        self, step: int, epoch: int, consumed: int, optimizer: Any, scheduler: Any
    ) -> None:
        """Writes checkpoint-{step} atomically (main process) and runs the callbacks."""
        if not self.main:
            return
        with writing(self.out / f"checkpoint-{step}"):
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
        changed = changed_settings(
            json.loads((path / "trainer_state.json").read_text()).get("config", {}),
            self.cfg.to_dict(),
        )
        if changed and not self.cfg.allow_changed_settings:
            raise ValueError(
                f"resume_from_checkpoint: {path} was written with other settings: "
                + "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
                + ". Resume with the same settings, or pass --allow_changed_settings"
            )
        self.changed_on_resume = changed
        state = load_checkpoint(path, self.model, optimizer, scheduler, self.device)
        self.sampler.load_state_dict(state["sampler"])
        if self.main:
            truncate_metrics(self.out / "metrics.jsonl", int(state["global_step"]))
        self.log(f"resumed from {path} at step {state['global_step']}")
        return (
            int(state["global_step"]),
            int(state["epoch"]),
            int(state["sampler"]["steps_consumed"]),
        )

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
        """Evaluates, trains, evaluates, writes the outputs; returns the report. The output
        directory's lock is released at the end, whatever happens."""
        try:
            return self._train()
        finally:
            self.release()

    def _train(self) -> dict[str, Any]:
        torch = self.torch
        cfg = self.cfg
        before: dict[str, Any] = {}
        if not cfg.skip_eval_before and cfg.resume_from_checkpoint is None:
            before = self.evaluate_all("before", cached=True)
        from torch.utils.data import DataLoader

        if cfg.mine_hard_negatives > 0 and self.mined is None:
            self.mined = self._mine_negatives()
        dataset: Any = PairDataset(self.qa, self.mined)
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
        total = self._total_steps(len(self.sampler))
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
        if cfg.lora_r > 0:  # adapters merged: a plain transformers model from here on
            self.model = merge_lora(self.model)
            self.encoder.model = self.model
        wise: dict[str, Any] | None = None
        if self.base_state is not None:
            wise = wise_ft(
                self.encoder,
                self.base_state,
                self.lambdas,
                self.validation,
                self.out if self.main else None,
                progress=not cfg.no_progress and self.main,
                log=self.log,
                embeddings=self.evaluator.encoded,
            )
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
        if wise is not None:
            train_info["wise_ft"] = wise
        if self.mined is not None:
            train_info["mined_negatives"] = sum(len(m) for m in self.mined)
        staging = self.out / ".tmp-model"
        if self.main:
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir()
        after = self.evaluate_all("after", cached=False, index_dir=staging, results_dir=self.out)
        report = {
            "config": cfg.to_dict(),
            "before": before,
            "after": after,
            "train": train_info,
        }
        if self.changed_on_resume:
            report["changed_on_resume"] = {
                k: {"before": a, "after": b} for k, (a, b) in self.changed_on_resume.items()
            }
        if self.main:
            self._save_outputs(report, staging)
        self._barrier()
        return report

    def _loss(self, model: Any, batch: dict[str, Any]) -> Any:
        torch = self.torch
        dev = self.device
        mono = bool(batch.pop("mono", False))
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
        loss = info_nce(q, p, self.cfg.temperature, n, offset)
        if self.distiller is not None and mono:
            loss = loss + self.distiller(embs[0], embs[1], batch["q"], batch["p"])
        if self.l2sp is not None:
            loss = loss + self.l2sp(model)
        return loss

    def _save_outputs(self, report: dict[str, Any], staging: Path) -> None:
        """The final model like a checkpoint: written into ``staging`` (which already holds
        the hnswlib indexes), fsynced, then renamed to ``model/``; report.json replaced
        atomically."""
        final = self.out / "model"
        try:
            with writing(final):
                self.encoder.save(staging)
                (staging / "README.md").write_text(model_card(report, self.qa))
                fsync_tree(staging)
            tmp = self.out / ".tmp-report.json"
            with writing(self.out / "report.json"):
                tmp.write_text(json.dumps(report, indent=2, default=_jsonable))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # the previous model/ stays intact
            (self.out / ".tmp-report.json").unlink(missing_ok=True)
            raise
        # both written: swap them in (renames need no space)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
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
