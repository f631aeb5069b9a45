"""Experiments: strategies x seeds x directions, every cell an ordinary training run in its own
directory under one experiment directory, evaluated on the **full** test set, per-question
results saved (Parquet) so that the paired statistics are recomputed without re-encoding.

Layout of ``experiment_dir``::

    experiment.json                    the settings (a changed one is refused on rerun)
    <train>-to-<eval>/
        untrained/                     embeddings.npz, results.parquet, summary.json
        untrained-centered/            per-language mean-centred embeddings (no training)
        <strategy>-seed<k>/run/        the training run (checkpoints while it runs, model/)
        <strategy>-seed<k>/            embeddings.npz, results.parquet, summary.json
        <variant>-seed<k>/             the same for a named variant (``--variants FILE``)
        */heldout.parquet              with ``--validation_split``: every model's per-question
                                       results on the held-out training articles
    comparison.md / comparison.json / comparison.png

Resumable: a cell with ``results.parquet`` is done and skipped; an interrupted cell resumes
from its last checkpoint. Cells of one seed that differ only in what happens after training
(WiSE-FT, :data:`~.settings.POST_TRAINING_SETTINGS`) train once: the first one trains, the
others resume from its final checkpoint (hard-linked into their own run directory) and only
apply their own post-training step; its checkpoints are kept until all of them are done.

With ``--validation_split`` the tables also compare every model on the held-out articles of
the training set (the same questions for every seed; WiSE-FT chose its lambda on them, so its
held-out figures flatter it a little): settings are chosen there, never on the test set.

Pairing: with a given seed every strategy starts from the same weights and the sampler visits
the groups in the same per-epoch order (its shuffle is a function of the seed and the epoch),
so only the batch composition differs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import RetrievalSet, load_lareqa, validation_set
from ..evaluation import evaluate
from ..evaluation.details import question_results, read_results, write_results
from ..models import Encoder, cached_embeddings, resolve_model
from ..sampling import STRATEGY_ALPHA
from .checkpoint import list_checkpoints
from .settings import (
    POST_TRAINING_SETTINGS,
    RESUMABLE_CHANGES,
    TrainConfig,
    changed_settings,
    coerce_setting,
    read_mapping_file,
)
from .trainer import Callback, Trainer

__all__ = ["ExperimentConfig", "center_by_language", "run_experiment"]


@dataclass
class ExperimentConfig:
    """The grid of an experiment (training settings come from :class:`TrainConfig`)."""

    strategies: str = field(
        default="mono,cross,hybrid",
        metadata={"help": "comma-separated strategies (mono, cross, hybrid)"},
    )
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated training seeds"})
    both_directions: bool = field(
        default=False,
        metadata={"help": "also train on the eval set and evaluate on the training set"},
    )
    experiment_dir: str = field(
        default="experiment-out", metadata={"help": "where every cell and the tables go"}
    )
    tables_only: bool = field(
        default=False,
        metadata={"help": "train nothing: write the tables from the cells finished so far"},
    )
    variants: str = field(
        default="",
        metadata={
            "help": "a YAML or JSON file of named variants, {name: {setting: value}}, each "
            "trained like a strategy (cells <name>-seed<k>, paired with the strategies): for "
            "example hybrid with WiSE-FT or distillation"
        },
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={"help": "keep a finished cell's checkpoints (default: removed; model kept)"},
    )

    def grid(self) -> tuple[list[str], list[int]]:
        """(strategies, seeds), checked."""
        strategies = [s.strip() for s in self.strategies.split(",") if s.strip()]
        bad = [s for s in strategies if s not in STRATEGY_ALPHA]
        if bad or not strategies:
            raise ValueError(
                f"strategies: must be among {sorted(STRATEGY_ALPHA)}, got {self.strategies!r}"
            )
        try:
            seeds = [int(s) for s in self.seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seeds: comma-separated integers, got {self.seeds!r}") from None
        if not seeds or any(s < 0 for s in seeds):
            raise ValueError(f"seeds: at least one seed >= 0, got {self.seeds!r}")
        return strategies, seeds

    def variant_settings(self) -> dict[str, dict[str, Any]]:
        """The named variants of ``--variants`` (``{}`` without), each value typed as its
        setting; names must not clash with a strategy or the baselines.

        Raises:
            ValueError: an unreadable file, a bad name, an unknown setting, a setting the
                experiment decides itself (seed, data, output), or a wrong type.
        """
        if not self.variants:
            return {}
        path = Path(self.variants)
        loaded = read_mapping_file(path, "variants")
        if not loaded:
            raise ValueError(f"variants: {path} must hold a mapping {{name: {{setting: value}}}}")
        out: dict[str, dict[str, Any]] = {}
        for name, settings in loaded.items():
            name = str(name)
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name) or name in (
                *STRATEGY_ALPHA,
                "untrained",
                "untrained-centered",
            ):
                raise ValueError(
                    f"variants: {name!r} is not a usable name (letters, digits, _ . + -; not a "
                    "strategy or 'untrained')"
                )
            if not isinstance(settings, dict):
                raise ValueError(f"variants: {name!r} must map settings to values")
            fixed = sorted(set(settings) & _EXPERIMENT_OWNED)
            if fixed:
                raise ValueError(f"variants: {name!r} sets {fixed}, which the experiment decides")
            out[name] = {
                str(k): coerce_setting(str(k), v, f"variants {path}: {name}")
                for k, v in settings.items()
            }
        return out


#: Settings an experiment decides for every cell (a variant may not set them).
_EXPERIMENT_OWNED = frozenset(
    {
        "seed",
        "train_data",
        "eval_data",
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "skip_eval_before",
    }
)


def center_by_language(
    ds: RetrievalSet, q: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The training-free fix of language bias: subtract each language's mean question
    embedding from its questions and mean candidate embedding from its candidates, then
    L2-normalise again."""
    q2 = q.astype(np.float32, copy=True)
    c2 = c.astype(np.float32, copy=True)
    q_lang = np.array([x.lang for x in ds.questions])
    for lang in ds.languages:
        m = q_lang == lang
        if m.any():
            q2[m] -= q2[m].mean(axis=0)
        sl = ds.candidates_of(lang)
        if len(sl):
            c2[sl.start : sl.stop] -= c2[sl.start : sl.stop].mean(axis=0)
    q2 /= np.maximum(np.linalg.norm(q2, axis=1, keepdims=True), 1e-12)
    c2 /= np.maximum(np.linalg.norm(c2, axis=1, keepdims=True), 1e-12)
    return q2, c2


def _write_cell(cell: Path, ds: RetrievalSet, q: np.ndarray, c: np.ndarray, extra: dict) -> dict:
    cell.mkdir(parents=True, exist_ok=True)
    tmp = cell / ".tmp-embeddings.npz"
    np.savez(tmp, q=q, c=c)
    os.replace(tmp, cell / "embeddings.npz")
    summary = {**evaluate(ds, q, c).summary(), **extra}
    (cell / "summary.json").write_text(json.dumps(summary, indent=2))
    write_results(question_results(ds, q, c), cell / "results.parquet")  # last: the done mark
    return summary


def _training_settings(cfg: TrainConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    for k in ("strategy", "alpha", "seed", "train_data", "eval_data", "output_dir"):
        d.pop(k, None)
    return d


def _check_experiment(
    root: Path, cfg: TrainConfig, exp: ExperimentConfig, variants: dict[str, dict[str, Any]]
) -> None:
    """Records the settings on the first run; refuses a rerun whose training settings
    differ, or that redefines a variant (the grid may grow: more strategies, variants or
    seeds are new cells)."""
    path = root / "experiment.json"
    now: dict[str, Any] = {
        "train": _training_settings(cfg),
        "both_directions": exp.both_directions,
        "variants": variants,
    }
    if path.exists():
        then = json.loads(path.read_text())
        diff = changed_settings(then.get("train", {}), now["train"])
        if then.get("both_directions") != exp.both_directions:
            diff["both_directions"] = (then.get("both_directions"), exp.both_directions)
        old = then.get("variants", {})
        for name in sorted(set(old) & set(variants)):
            if old[name] != variants[name]:
                diff[f"variant {name}"] = (old[name], variants[name])
        now["variants"] = {**old, **variants}
        if diff:
            raise ValueError(
                f"experiment_dir: {root} was run with other settings: "
                + "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())
                + ". Use another --experiment_dir, or the same settings"
            )
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / ".tmp-experiment.json"
    tmp.write_text(json.dumps(now, indent=2))
    os.replace(tmp, path)


def _training_key(cfg: TrainConfig) -> str:
    """What a cell trains: its settings without where it writes and without what is applied
    after the loop. Cells with equal keys train identically."""
    d = cfg.to_dict()
    for k in RESUMABLE_CHANGES | POST_TRAINING_SETTINGS:
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


def _final_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a finished run ended with (its step is the report's last step)."""
    if not (run_dir / "report.json").exists():
        return None
    steps = json.loads((run_dir / "report.json").read_text())["train"]["steps"]
    cps = list_checkpoints(run_dir)
    return cps[-1] if cps and cps[-1].name == f"checkpoint-{steps}" else None


def _share_training(run_dir: Path, source: Path, log: Any) -> None:
    """Starts ``run_dir`` from ``source``'s final checkpoint (hard links, or a copy where
    links are refused), so that resuming it only runs the post-training step. Nothing when
    ``run_dir`` has begun already or ``source`` has no final checkpoint."""
    cp = _final_checkpoint(source)
    if cp is None or run_dir.exists():
        return
    run_dir.mkdir(parents=True)
    tmp = run_dir / f".tmp-{cp.name}"

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(cp, tmp, copy_function=link)
    for name in ("metrics.jsonl", "report_before.json"):
        if (source / name).exists():
            shutil.copy2(source / name, run_dir / name)
    (run_dir.parent / "trained_as").write_text(source.parent.name)
    os.replace(tmp, run_dir / cp.name)  # complete, or not there at all
    log(f"{run_dir.parent.name}: trains like {source.parent.name}; from its {cp.name}")


def _run_cell(
    cell: Path,
    base: TrainConfig,
    exp: ExperimentConfig,
    ds: RetrievalSet,
    log: Any,
    callbacks: Sequence[Callback] = (),
    keep: bool = False,
    shared_with: Path | None = None,
    held_out: RetrievalSet | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) one cell and evaluates it on ``ds`` (and on ``held_out``, the
    training set's held-out articles, when given). ``keep``: leave its checkpoints (another
    cell will start from the last one); ``shared_with``: a finished cell that trains
    identically, whose final checkpoint this one starts from."""
    run_dir = cell / "run"
    if shared_with is not None:
        _share_training(run_dir, shared_with / "run", log)
    cfg = dataclasses.replace(base, output_dir=str(run_dir))
    if (run_dir / "report.json").exists() and (run_dir / "model").is_dir():
        log(f"{cell.name}: trained already; evaluating")
    else:
        resume = run_dir.is_dir() and bool(list_checkpoints(run_dir))
        cfg = dataclasses.replace(
            cfg,
            resume_from_checkpoint="last" if resume else None,
            overwrite_output_dir=not resume,
        )
        log(f"{cell.name}: {'resuming' if resume else 'training'} in {run_dir}")
        Trainer(cfg, callbacks).train()
    t0 = time.perf_counter()
    enc = _cell_encoder(run_dir, base)
    q, c = enc.embed(ds, progress=not base.no_progress)
    if held_out is not None:
        _write_held_out(cell, held_out, lambda: enc, base.no_progress)
    if not (exp.keep_checkpoints or keep):
        for cp in list_checkpoints(run_dir):
            shutil.rmtree(cp, ignore_errors=True)
    report = json.loads((run_dir / "report.json").read_text())
    extra: dict[str, Any] = {
        "train_seconds": report["train"]["step_time_s"] * report["train"]["steps"]
    }
    if (cell / "trained_as").exists():  # its own run only resumed the twin's final checkpoint
        twin = (cell / "trained_as").read_text().strip()
        src = json.loads((cell.parent / twin / "run" / "report.json").read_text())["train"]
        extra = {"train_seconds": src["step_time_s"] * src["steps"], "trained_as": twin}
    extra["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return _write_cell(cell, ds, q, c, extra)


#: Per-question results of a cell on the training set's held-out articles.
HELD_OUT = "heldout.parquet"


def _cell_encoder(run_dir: Path, base: TrainConfig) -> Encoder:
    """A finished cell's model, loaded for evaluation with the experiment's settings."""
    return Encoder.load(
        run_dir / "model",
        max_length=base.eval_max_length,
        batch_size=base.eval_batch_size,
        device=None if base.device == "auto" else base.device,
    )


def _write_held_out(
    cell: Path, held_out: RetrievalSet, encoder: Callable[[], Encoder], no_progress: bool
) -> None:
    """``cell/heldout.parquet``: the trainer's per-question results on the validation split
    when it wrote them (``run/results_validation.parquet``: same model, same set), else the
    held-out set encoded with ``encoder()`` (a cell trained by an older version; the model is
    only loaded then)."""
    src = cell / "run" / "results_validation.parquet"
    if src.exists():
        table = read_results(src)
        if table.num_rows == held_out.n_questions:
            write_results(table, cell / HELD_OUT)
            return
    q, c = encoder().embed(held_out, progress=not no_progress)
    write_results(question_results(held_out, q, c), cell / HELD_OUT)


def _embedder(enc: Encoder, ds: RetrievalSet, progress: bool) -> Any:
    return lambda: enc.embed(ds, progress=progress)


def run_experiment(
    base: TrainConfig, exp: ExperimentConfig, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Runs (or continues) the grid and writes the comparison tables; returns them.
    ``callbacks`` go to every cell's :class:`Trainer`."""
    from ..evaluation.stats import compare_cells

    strategies, seeds = exp.grid()
    variants = exp.variant_settings()
    kinds: list[tuple[str, dict[str, Any]]] = [
        (s, {"strategy": s, "alpha": None}) for s in strategies
    ] + list(variants.items())
    if len(base.eval_data) != 1:
        raise ValueError("eval_data: an experiment evaluates on exactly one set")
    root = Path(exp.experiment_dir)
    train_set, eval_set = Path(base.train_data), Path(base.eval_data[0])
    base = dataclasses.replace(base, eval_data=[], skip_eval_before=True)
    base.validate()
    for name, over in variants.items():  # every variant's settings checked before any work
        try:
            dataclasses.replace(base, **over).validate()
        except (ValueError, TypeError) as e:
            raise ValueError(f"variants: {name!r}: {e}") from None
    _check_experiment(root, base, exp, variants)
    directions = [(train_set, eval_set)]
    if exp.both_directions:
        directions.append((eval_set, train_set))

    def log(msg: str) -> None:
        print(f"[experiment {time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)

    tables: dict[str, Any] = {}
    for tr, ev in directions:
        if tr.resolve() == ev.resolve():
            raise ValueError(f"eval_data: {ev} is the training set; results must be zero-shot")
        dir_name = f"{tr.name}-to-{ev.name}"
        ds = load_lareqa(ev)
        held = validation_set(tr, base.validation_split) if base.validation_split > 0 else None
        ddir = root / dir_name
        _untrained_cells(ddir, base, ds, held, log)
        for seed in seeds:
            cfgs = {
                name: dataclasses.replace(base, **{**over, "seed": seed, "train_data": str(tr)})
                for name, over in kinds
            }
            twins: dict[str, list[Path]] = {}  # cells that train identically, in grid order
            for name, cfg in cfgs.items():
                twins.setdefault(_training_key(cfg), []).append(ddir / f"{name}-seed{seed}")
            for name, cfg in cfgs.items():
                cell = ddir / f"{name}-seed{seed}"
                if (cell / "results.parquet").exists() or exp.tables_only:
                    continue
                group = twins[_training_key(cfg)]
                others = [t for t in group if t != cell]
                pending = [t for t in others if not (t / "results.parquet").exists()]
                source = next((t for t in others if _final_checkpoint(t / "run") is not None), None)
                _run_cell(
                    cell,
                    cfg,
                    exp,
                    ds,
                    log,
                    callbacks,
                    keep=bool(pending),
                    shared_with=source,
                    held_out=held,
                )
                if not pending and not exp.keep_checkpoints:  # the group is done
                    for twin in others:
                        for cp in list_checkpoints(twin / "run"):
                            shutil.rmtree(cp, ignore_errors=True)
        _refresh_results(ddir, ds, log)
        names = [k for k, _ in kinds]
        tables[dir_name] = compare_cells(ddir, names, seeds)
        if held is not None:
            _refresh_held_out(ddir, base, held, log)
            tables[f"{tr.name} held-out articles"] = compare_cells(
                ddir, names, seeds, results=HELD_OUT
            )
    _write_tables(root, tables)
    return tables


def _untrained_cells(
    ddir: Path, base: TrainConfig, ds: RetrievalSet, held: RetrievalSet | None, log: Any
) -> None:
    """The untrained and the per-language-centred rows on the full test set ``ds`` (and
    their held-out results on ``held``), unless written already. The model is loaded only
    when something is missing; its embeddings go through the embedding cache."""
    untrained, centered = ddir / "untrained", ddir / "untrained-centered"
    enc: Encoder | None = None

    def embed(s: RetrievalSet) -> tuple[np.ndarray, np.ndarray]:
        nonlocal enc
        if enc is None:
            enc = Encoder.load(
                resolve_model(base.model),
                query_prefix=base.query_prefix,
                passage_prefix=base.passage_prefix,
                max_length=base.eval_max_length,
                batch_size=base.eval_batch_size,
            )
        log(f"{ddir.name}: the untrained model on {s.name} ({s.n_questions} questions)")
        key = f"untrained|{enc.source}|{s.fingerprint()}|{enc.max_length}|{enc.pooling}"
        key += f"|{enc.query_prefix}|{enc.passage_prefix}"
        return cached_embeddings(key, _embedder(enc, s, not base.no_progress))

    if not (untrained / "results.parquet").exists():
        q, c = embed(ds)
        _write_cell(untrained, ds, q, c, {})
        _write_cell(centered, ds, *center_by_language(ds, q, c), {})
    if held is not None and not (centered / HELD_OUT).exists():
        q, c = embed(held)
        write_results(question_results(held, q, c), untrained / HELD_OUT)
        write_results(question_results(held, *center_by_language(held, q, c)), centered / HELD_OUT)


def _refresh_held_out(ddir: Path, base: TrainConfig, held: RetrievalSet, log: Any) -> None:
    """Held-out results for finished cells that lack them (trained by an older version): from
    the trainer's per-question results, else by encoding ``held`` with the cell's model."""
    for res in sorted(ddir.glob("*-seed*/results.parquet")):
        cell = res.parent
        if (cell / HELD_OUT).exists() or not (cell / "run" / "model").is_dir():
            continue
        log(f"{cell.name}: per-question results on the held-out articles")
        load = functools.partial(_cell_encoder, cell / "run", base)
        _write_held_out(cell, held, load, base.no_progress)


def _refresh_results(ddir: Path, ds: RetrievalSet, log: Any) -> None:
    """Recomputes a cell's per-question results from its saved embeddings (no re-encoding)
    when they lack a column this version writes (an older version's cell)."""
    import pyarrow.parquet as pq

    for res in sorted(ddir.glob("*/results.parquet")):
        emb = res.parent / "embeddings.npz"
        if "own_first" in pq.read_schema(res).names or not emb.exists():
            continue
        log(f"{res.parent.name}: per-question results recomputed from its embeddings")
        with np.load(emb) as z:
            write_results(question_results(ds, z["q"], z["c"]), res)


def _write_tables(root: Path, tables: dict[str, Any]) -> None:
    from ..evaluation.stats import chart, markdown

    (root / "comparison.json").write_text(json.dumps(tables, indent=2))
    (root / "comparison.md").write_text(markdown(tables))
    chart(tables, root / "comparison.png")
