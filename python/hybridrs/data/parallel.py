"""Parallel question/passage training data: one record per (id, language).

:func:`load_parallel_qa` reads a JSONL file, a LAReQA directory, a ``datasets.Dataset`` or a
hub dataset name, validates every record, and returns a :class:`ParallelQA` whose
rows feed :meth:`hybridrs.sampling.PairPool.from_parallel` and so the hybrid batch sampler.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hub import hub_dataset
from .lareqa import LANG_CODE_RE, load_lareqa

__all__ = ["ParallelQA", "load_parallel_qa"]

_FIELDS = ("id", "lang", "question", "passage")


@dataclass
class ParallelQA:
    """Parallel training pairs: ``questions[i]`` / ``passages[i]`` in language ``langs[i]``,
    group ``ids[i]`` (rows with the same id are translations of each other).

    Attributes:
        negatives: Optional hard negatives per row (empty lists when absent).
        skipped: Reasons and counts of records skipped with ``on_error="skip"``.
        source: Where the data came from; ``licence``: its licence when known.
    """

    ids: list[str]
    langs: list[str]
    questions: list[str]
    passages: list[str]
    negatives: list[list[str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""
    licence: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes present, sorted."""
        return tuple(sorted(set(self.langs)))

    def __repr__(self) -> str:
        n_groups = len(set(self.ids))
        return (
            f"ParallelQA({self.source!r}, rows={len(self)}, groups={n_groups}, "
            f"languages={list(self.languages)})"
        )


class _Collector:
    def __init__(self, on_error: str, languages: set[str] | None) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.languages = languages
        self.data = ParallelQA([], [], [], [], [])
        self.seen: set[tuple[str, str]] = set()
        self.skipped: Counter[str] = Counter()

    def bad(self, where: str, reason: str, key: str) -> None:
        if self.on_error == "raise":
            raise ValueError(f"{where}: {reason} (pass on_error='skip' to skip such records)")
        self.skipped[key] += 1

    def add(self, rec: Any, where: str) -> None:
        if not isinstance(rec, dict):
            self.bad(where, "record is not an object", "not an object")
            return
        for f in _FIELDS:
            if f not in rec or rec[f] is None:
                self.bad(where, f"missing field {f!r}", f"missing {f}")
                return
        rid, lang = rec["id"], rec["lang"]
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            self.bad(where, f"field 'id' must be a string or integer, got {rid!r}", "bad id")
            return
        if not isinstance(lang, str) or not LANG_CODE_RE.match(lang):
            self.bad(where, f"field 'lang' is not a language code: {lang!r}", "bad lang")
            return
        for f in ("question", "passage"):
            if not isinstance(rec[f], str) or not rec[f].strip():
                self.bad(where, f"field {f!r} is empty or not text", f"empty {f}")
                return
        negs = rec.get("negatives") or []
        if not isinstance(negs, list) or not all(isinstance(n, str) and n.strip() for n in negs):
            self.bad(
                where, "field 'negatives' must be a list of non-empty strings", "bad negatives"
            )
            return
        if self.languages is not None and lang not in self.languages:
            return  # filtered out on request, not an error
        key = (str(rid), lang)
        if key in self.seen:
            self.bad(where, f"id {rid!r} appears twice in language {lang!r}", "duplicate id")
            return
        self.seen.add(key)
        d = self.data
        d.ids.append(str(rid))
        d.langs.append(lang)
        d.questions.append(rec["question"])
        d.passages.append(rec["passage"])
        d.negatives.append(list(negs))

    def finish(self, source: str, licence: str = "") -> ParallelQA:
        d = self.data
        d.source, d.licence = source, licence
        d.skipped = dict(self.skipped)
        if self.skipped:
            warnings.warn(
                f"{source}: skipped {sum(self.skipped.values())} bad record(s): "
                + ", ".join(f"{k} x{v}" for k, v in sorted(self.skipped.items())),
                stacklevel=3,
            )
        if not d.ids:
            raise ValueError(f"{source}: no usable records (empty data set)")
        return d


def _jsonl(path: Path, col: _Collector) -> None:
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                col.bad(
                    f"{path}: line {n}",
                    f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1})",
                    "not UTF-8",
                )
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                col.bad(f"{path}: line {n}", f"malformed JSON ({e.msg})", "malformed JSON")
                continue
            col.add(rec, f"{path}: line {n}")


def _lareqa_records(path: Path, passage: str) -> Iterator[dict[str, Any]]:
    ds = load_lareqa(path)
    for q in ds.questions:
        cand = ds.candidates[q.answer]
        text = cand.context if passage == "paragraph" else cand.text
        yield {"id": q.id, "lang": q.lang, "question": q.text, "passage": text}


def load_parallel_qa(
    source: Any,
    languages: Iterable[str] | None = None,
    on_error: str = "raise",
    passage: str = "sentence",
    split: str = "train",
) -> ParallelQA:
    """Loads parallel question/passage pairs.

    Args:
        source: One of
            * a JSONL file, one record per (id, lang):
              ``{"id", "lang", "question", "passage"}`` and optional ``"negatives": [...]``;
            * a LAReQA directory (question and its answer sentence, or with
              ``passage="paragraph"`` the whole paragraph, per language), so one benchmark can
              be trained on while the other is evaluated zero-shot;
            * a ``datasets.Dataset`` with those columns, or a hub dataset name (loaded through
              ``datasets``; fails fast with a clear message when no hub is reachable).
        languages: Keep only these language codes (others are left out, not errors).
        on_error: ``"raise"`` (default): a bad record (missing field, empty text, a value
            that is no language code, one id twice in one language) raises ``ValueError``
            naming its line or row. ``"skip"``: skipped, counted in ``.skipped`` and a warning.
        passage: ``"sentence"`` or ``"paragraph"`` (LAReQA directories only).
        split: Split of a hub dataset.

    Returns:
        A :class:`ParallelQA`.
    """
    if passage not in ("sentence", "paragraph"):
        raise ValueError(f"passage: must be 'sentence' or 'paragraph', got {passage!r}")
    if isinstance(languages, str):
        languages = [languages]  # one code, not its letters
    langs = set(languages) if languages is not None else None
    col = _Collector(on_error, langs)
    if isinstance(source, (str, Path)) and Path(source).exists():
        path = Path(source)
        if not path.is_dir() and not path.is_file():
            raise ValueError(f"source: {str(path)!r} is neither a file nor a directory")
        if path.is_dir():
            for i, rec in enumerate(_lareqa_records(path, passage)):
                col.add(rec, f"{path}: question {i}")
            lic = (
                (path / "LICENSE").read_text(errors="replace").splitlines()[0]
                if (path / "LICENSE").exists()
                else ""
            )
            return col.finish(str(path), lic.strip())
        _jsonl(path, col)
        return col.finish(str(path))
    if isinstance(source, (str, Path)):
        s = str(source)
        looks_like_path = (
            s.endswith((".jsonl", ".json"))
            or s.startswith(("/", "./", "../", "~"))
            or s.count("/") > 1
        )
        if looks_like_path:
            raise ValueError(f"source: file or directory {s!r} does not exist")
        source = hub_dataset(s, split)
    cols = getattr(source, "column_names", None)
    if cols is None:
        raise TypeError(
            "source: expected a JSONL path, a LAReQA directory, a datasets.Dataset or a hub "
            f"name, got {type(source).__name__}"
        )
    missing = [f for f in _FIELDS if f not in cols]
    if missing:
        raise ValueError(f"source: dataset lacks column(s) {missing}; it has {list(cols)}")
    for i, rec in enumerate(source):
        col.add(rec, f"row {i}")
    return col.finish(f"dataset({len(source)} rows)")
