"""Large retrieval sets in the BEIR / MIRACL layout, with graded relevance.

A directory holds ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line), ``queries.jsonl``
(``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``; a header
line is optional). Records may carry a language (``"lang"`` or ``"language"``), as a multilingual
MIRACL-style set does; otherwise every record gets ``language``. Only queries with at least one
judged-relevant passage (score > 0) are kept (trec_eval's convention); scores <= 0 are judged
non-relevant. A name that is not a directory is a hub name: loaded through ``datasets`` when the
hub is reachable, failing at once with a clear message when it is not.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .hub import hub_offline, hub_unreachable_reason
from .lareqa import LANG_CODE_RE, Candidate, Question, RetrievalSet

__all__ = ["is_beir_dir", "load_beir"]


def is_beir_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory in the BEIR layout (``corpus.jsonl`` and
    ``queries.jsonl``)."""
    p = Path(path)
    return (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file()


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object per line")
            yield n, rec


def _text(rec: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    v = rec.get(key, None if required else "")
    if v is None and not required:
        return ""
    if not isinstance(v, (str, int)):
        raise ValueError(f"{where}: field {key!r} missing or not a string")
    return str(v)


def _lang(rec: dict[str, Any], default: str, where: str) -> str:
    v = rec.get("lang", rec.get("language", default))
    if not isinstance(v, str) or not LANG_CODE_RE.match(v):
        raise ValueError(f"{where}: language {v!r} is not a language code")
    return v


def load_beir(
    path: str | Path, split: str = "test", language: str = "und", name: str | None = None
) -> RetrievalSet:
    """Loads a BEIR / MIRACL-layout set as a :class:`RetrievalSet` with graded relevance
    (``relevance_gain``): questions are the queries, candidates the passages (``title`` and
    ``text`` joined), grouped by language.

    Args:
        path: The directory, or a hub name (needs the hub; fails fast offline).
        split: Which ``qrels/<split>.tsv``.
        language: Language code of records without one (default ``und``, undetermined).
        name: The set's name (default: the directory's name).

    Raises:
        ValueError: a missing file, a malformed line (named with its line number), a qrels
            entry naming an unknown query or passage, or no relevant judgement at all.
    """
    p = Path(path)
    if not p.is_dir():
        if p.exists() or str(path).startswith((".", "/")):
            raise ValueError(f"path: {path} is not a BEIR directory (corpus.jsonl, queries.jsonl)")
        _hub(str(path))
    if not LANG_CODE_RE.match(language):
        raise ValueError(f"language: {language!r} is not a language code")
    for f in ("corpus.jsonl", "queries.jsonl"):
        if not (p / f).is_file():
            raise ValueError(f"path: {p} has no {f} (the BEIR layout)")
    qrels_path = p / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(x.stem for x in (p / "qrels").glob("*.tsv")) if (p / "qrels").is_dir() else []
        raise ValueError(f"split: no {qrels_path} (splits here: {have or 'none'})")

    docs: list[tuple[str, str, str]] = []  # (lang, id, text)
    doc_index: dict[str, int] = {}
    for n, rec in _jsonl(p / "corpus.jsonl"):
        where = f"{p / 'corpus.jsonl'}:{n}"
        did = _text(rec, "_id", where)
        if did in doc_index:
            raise ValueError(f"{where}: passage id {did!r} appears twice")
        title = _text(rec, "title", where, required=False)
        text = _text(rec, "text", where)
        doc_index[did] = len(docs)
        docs.append((_lang(rec, language, where), did, f"{title} {text}".strip()))
    queries: dict[str, tuple[str, str]] = {}
    for n, rec in _jsonl(p / "queries.jsonl"):
        where = f"{p / 'queries.jsonl'}:{n}"
        queries[_text(rec, "_id", where)] = (_lang(rec, language, where), _text(rec, "text", where))

    judged: dict[str, dict[str, float]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (n == 1 and row[0] in ("query-id", "query_id", "qid")):
                continue
            where = f"{qrels_path}:{n}"
            if len(row) < 3:
                raise ValueError(f"{where}: expected query-id, corpus-id, score")
            qid, did, score = row[0], row[1], row[-1]
            try:
                gain = float(score)
            except ValueError:
                raise ValueError(f"{where}: score {score!r} is not a number") from None
            if qid not in queries:
                raise ValueError(f"{where}: unknown query id {qid!r}")
            if did not in doc_index:
                raise ValueError(f"{where}: unknown passage id {did!r}")
            judged.setdefault(qid, {})[did] = gain  # a repeated judgement: the last one

    langs = sorted({d[0] for d in docs} | {queries[q][0] for q in judged})
    order = sorted(range(len(docs)), key=lambda i: langs.index(docs[i][0]))
    new_pos = {old: new for new, old in enumerate(order)}
    candidates = [Candidate(docs[i][0], docs[i][2], docs[i][2], 0) for i in order]
    qs: list[Question] = []
    rel: list[list[int]] = []
    gains: list[list[float]] = []
    for qid, js in judged.items():
        pos = [(new_pos[doc_index[d]], g) for d, g in js.items() if g > 0]
        if not pos:
            continue
        pos.sort()
        lang, text = queries[qid]
        qs.append(Question(lang, qid, text, pos[0][0], 0))
        rel.append([c for c, _ in pos])
        gains.append([g for _, g in pos])
    if not qs:
        raise ValueError(f"{qrels_path}: no query has a relevant passage (score > 0)")
    return RetrievalSet(langs, qs, candidates, rel, name=name or p.name, gains=gains)


def _hub(name: str) -> None:
    """A hub name: there is no loader without the hub; fail fast and say what to pass."""
    reason = "offline mode is set" if hub_offline() else hub_unreachable_reason()
    raise ValueError(
        f"path: {name!r} is not a local directory"
        + (f" and the hub is unreachable ({reason})" if reason else "")
        + "; download the set in the BEIR layout (corpus.jsonl, queries.jsonl, qrels/*.tsv) "
        "and pass its directory"
    )
