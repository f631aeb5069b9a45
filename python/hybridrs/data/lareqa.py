"""LAReQA-format retrieval sets (XQuAD-R, MLQA-R): loading and consistent subsets.

A LAReQA directory holds one ``<lang>.json`` per language in SQuAD layout, each paragraph
carrying ``sentences`` and ``sentence_breaks``. The semantics follow the LAReQA reference
implementation:

* languages are sorted by code, then everything is in file order;
* the candidates are the sentences ``context[start:end]`` of every paragraph;
* a question's answer sentence is the first break with ``start <= answer_start < end``; a
  question whose answer lies in no sentence is skipped (and counted in a warning);
* a question is relevant to every candidate that is the answer sentence of a question with the
  same ``id``, in any language.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Candidate", "Question", "RetrievalSet", "load_lareqa"]

#: A language code: ISO 639 letters, optionally a script/region suffix ("en", "zh-Hans").
LANG_CODE_RE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
#: A language file's name (stem): ISO 639 letters, optionally a BCP 47 script (``zh-Hans``)
#: or region (``pt-BR``, ``es-419``); stricter than :data:`LANG_CODE_RE`, so that ``dev-en``
#: is not read as a language.
LANG_FILE_RE = re.compile(r"^[a-z]{2,3}([-_]([A-Z][a-z]{3}|[A-Z]{2}|[0-9]{3}))?$")


@dataclass(frozen=True)
class Question:
    """A question of a retrieval set.

    Attributes:
        lang: Language code (``"en"``).
        id: Question id, shared by the translations of one question.
        text: The question.
        answer: Index (into ``RetrievalSet.candidates``) of its own answer sentence.
        article: Index of its article in the language file.
    """

    lang: str
    id: str
    text: str
    answer: int
    article: int


@dataclass(frozen=True)
class Candidate:
    """A candidate answer sentence.

    Attributes:
        lang: Language code.
        text: The sentence, ``context[start:end]``.
        context: The whole paragraph it comes from.
        article: Index of its article in the language file.
    """

    lang: str
    text: str
    context: str
    article: int


class RetrievalSet:
    """Questions, candidate sentences and their relevance, grouped by language.

    Candidates are grouped by language in ``languages`` order: the candidates of
    ``languages[l]`` are ``lang_offsets[l]:lang_offsets[l + 1]``. Relevance is kept as compact
    CSR arrays: question ``i`` is relevant to ``relevance_indices[relevance_indptr[i]:
    relevance_indptr[i + 1]]``.

    Build one with :func:`load_lareqa`; :meth:`subset` gives consistent smaller sets.
    """

    def __init__(
        self,
        languages: Sequence[str],
        questions: Sequence[Question],
        candidates: Sequence[Candidate],
        relevance: Sequence[Sequence[int]],
        name: str = "",
        gains: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.languages: tuple[str, ...] = tuple(languages)
        self.questions: list[Question] = list(questions)
        self.candidates: list[Candidate] = list(candidates)
        self.name = name
        lang_index = {lang: i for i, lang in enumerate(self.languages)}
        if len(lang_index) != len(self.languages):
            raise ValueError(f"languages: duplicate codes in {self.languages}")
        if not self.questions:
            raise ValueError(f"{name or 'retrieval set'}: no questions (empty set)")
        if not self.candidates:
            raise ValueError(f"{name or 'retrieval set'}: no candidates (empty set)")
        if len(relevance) != len(self.questions):
            raise ValueError("relevance: needs one entry per question")
        self.question_lang = np.array([lang_index[q.lang] for q in self.questions], dtype=np.int64)
        self.candidate_lang = np.array(
            [lang_index[c.lang] for c in self.candidates], dtype=np.int64
        )
        if np.any(np.diff(self.candidate_lang) < 0):
            raise ValueError("candidates: must be grouped by language in `languages` order")
        counts = np.bincount(self.candidate_lang, minlength=len(self.languages))
        self.lang_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        lengths = np.array([len(r) for r in relevance], dtype=np.int64)
        self.relevance_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = [c for r in relevance for c in r]
        self.relevance_indices = np.array(flat, dtype=np.int64)
        if flat and (
            self.relevance_indices.min() < 0 or self.relevance_indices.max() >= len(self.candidates)
        ):
            raise ValueError("relevance: candidate index out of range")
        #: Graded relevance (BEIR / MIRACL qrels), aligned with ``relevance_indices``; ones for
        #: binary sets.
        self.relevance_gain = np.ones(len(flat), dtype=np.float64)
        if gains is not None:
            if [len(g) for g in gains] != lengths.tolist():
                raise ValueError("gains: needs one gain per relevant candidate of each question")
            self.relevance_gain = np.array([x for g in gains for x in g], dtype=np.float64)
            if self.relevance_gain.size and not (
                np.all(np.isfinite(self.relevance_gain)) and self.relevance_gain.min() > 0
            ):
                raise ValueError("gains: must be finite and > 0")

    # -- views -------------------------------------------------------------------------------
    @property
    def n_questions(self) -> int:
        """Number of questions."""
        return len(self.questions)

    @property
    def n_candidates(self) -> int:
        """Number of candidates."""
        return len(self.candidates)

    def relevant(self, i: int) -> np.ndarray:
        """Candidate indices relevant to question ``i``."""
        a, b = self.relevance_indptr[i], self.relevance_indptr[i + 1]
        return self.relevance_indices[a:b]

    def candidates_of(self, lang: str) -> range:
        """Index range of the candidates of one language."""
        li = self._lang_index(lang)
        return range(int(self.lang_offsets[li]), int(self.lang_offsets[li + 1]))

    def questions_of(self, lang: str) -> np.ndarray:
        """Indices of the questions of one language."""
        return np.flatnonzero(self.question_lang == self._lang_index(lang))

    def _lang_index(self, lang: str) -> int:
        try:
            return self.languages.index(lang)
        except ValueError:
            raise ValueError(
                f"languages: unknown language {lang!r}; this set has {list(self.languages)}"
            ) from None

    def fingerprint(self) -> str:
        """A short hash of the texts and relevance (a cache key for embeddings)."""
        import hashlib

        h = hashlib.sha256()
        for q in self.questions:
            h.update(f"q\x00{q.lang}\x00{q.id}\x00{q.text}\x01".encode())
        for c in self.candidates:
            h.update(f"c\x00{c.lang}\x00{c.text}\x00{c.context}\x01".encode())
        h.update(self.relevance_indptr.tobytes())
        h.update(self.relevance_indices.tobytes())
        if np.any(self.relevance_gain != 1.0):  # graded sets only (binary keys unchanged)
            h.update(self.relevance_gain.tobytes())
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.questions)

    def __repr__(self) -> str:
        return (
            f"RetrievalSet({self.name!r}, languages={list(self.languages)}, "
            f"questions={self.n_questions}, candidates={self.n_candidates})"
        )

    # -- subsets -----------------------------------------------------------------------------
    def subset(
        self,
        questions: Iterable[int] | None = None,
        languages: Iterable[str] | None = None,
        articles: Iterable[int] | None = None,
        candidates: Iterable[int] | None = None,
    ) -> RetrievalSet:
        """A consistent smaller set.

        Args:
            questions: Question indices to keep (in this set's numbering). The candidates stay
                the same unless ``languages`` or ``articles`` restrict them.
            languages: Keep only these languages (questions and candidates).
            articles: Keep only the questions and candidates of these article indices (the
                articles of XQuAD-R are parallel across languages, so ids stay parallel).
            candidates: Keep only these candidate indices.

        Returns:
            A new :class:`RetrievalSet`; relevance is re-indexed to the kept candidates, and a
            question left without any relevant candidate is dropped.
        """
        keep_q = np.ones(self.n_questions, dtype=bool)
        if questions is not None:
            idx = np.asarray(list(questions), dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= self.n_questions):
                raise ValueError(f"questions: indices must lie in 0..{self.n_questions - 1}")
            keep_q[:] = False
            keep_q[idx] = True
        keep_c = np.ones(self.n_candidates, dtype=bool)
        langs = self.languages
        if languages is not None:
            wanted = list(dict.fromkeys(languages))
            for lang in wanted:
                self._lang_index(lang)
            langs = tuple(sorted(wanted))
            lang_ok = np.isin(np.array(self.languages), langs)
            keep_q &= lang_ok[self.question_lang]
            keep_c &= lang_ok[self.candidate_lang]
        if articles is not None:
            arts = np.asarray(list(articles), dtype=np.int64)
            keep_q &= np.isin([q.article for q in self.questions], arts)
            keep_c &= np.isin([c.article for c in self.candidates], arts)
        if candidates is not None:
            cidx = np.asarray(list(candidates), dtype=np.int64)
            if cidx.size and (cidx.min() < 0 or cidx.max() >= self.n_candidates):
                raise ValueError(f"candidates: indices must lie in 0..{self.n_candidates - 1}")
            mask = np.zeros(self.n_candidates, dtype=bool)
            mask[cidx] = True
            keep_c &= mask
        new_index = np.full(self.n_candidates, -1, dtype=np.int64)
        new_index[keep_c] = np.arange(int(keep_c.sum()))
        qs: list[Question] = []
        rel: list[list[int]] = []
        gains: list[list[float]] = []
        for i in np.flatnonzero(keep_q):
            a, b = self.relevance_indptr[i], self.relevance_indptr[i + 1]
            r = new_index[self.relevance_indices[a:b]]
            kept = r >= 0
            if not kept.any():
                continue
            q = self.questions[int(i)]
            ans = int(new_index[q.answer])
            qs.append(Question(q.lang, q.id, q.text, ans, q.article))
            rel.append(r[kept].tolist())
            gains.append(self.relevance_gain[a:b][kept].tolist())
        cands = [c for c, k in zip(self.candidates, keep_c, strict=False) if k]
        return RetrievalSet(langs, qs, cands, rel, name=self.name, gains=gains)


# -- loading -------------------------------------------------------------------------------
def _lang_of_file(path: Path) -> str:
    """``en.json`` -> ``en``; a prefix separated by a dot or underscore is allowed
    (``xquad.en.json``, ``dev_en.json``); ``dev-en.json`` is no language."""
    if LANG_FILE_RE.match(path.stem):
        return path.stem
    token = re.split(r"[._]", path.stem)[-1]
    if LANG_FILE_RE.match(token):
        return token
    raise ValueError(
        f"{path}: cannot tell the language from the file name (want <lang>.json, e.g. en.json, "
        "zh-Hans.json or pt-BR.json)"
    )


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _field(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValueError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


def load_lareqa(path: str | Path, languages: Iterable[str] | None = None) -> RetrievalSet:
    """Loads a LAReQA-format directory (one ``<lang>.json`` per language).

    Args:
        path: The directory, e.g. ``"../shared/data/xquad-r"``.
        languages: Language codes to load (default: every file).

    Returns:
        A :class:`RetrievalSet` (XQuAD-R: 13,090 questions and 13,014 candidates in 11
        languages; MLQA-R: 4,199 and 20,534 in 7).

    Raises:
        ValueError: naming the file and the field, for a missing directory, malformed JSON,
            sentence breaks out of range, two files for one language or an empty set.

    Example:
        >>> ds = load_lareqa("../shared/data/xquad-r", languages=["en", "de"])  # doctest: +SKIP
    """
    root = Path(path)
    if not root.exists():
        raise ValueError(f"path: directory {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"path: {str(root)!r} is not a directory of <lang>.json files")
    files: dict[str, Path] = {}
    for f in sorted(root.glob("*.json")):
        if not f.is_file():
            raise ValueError(f"path: {f} is a directory, not a <lang>.json file")
        lang = _lang_of_file(f)
        if lang in files:
            raise ValueError(f"path: two files for language {lang!r}: {files[lang]} and {f}")
        files[lang] = f
    if not files:
        raise ValueError(f"path: no <lang>.json files in {str(root)!r}")
    if languages is not None:
        wanted = list(dict.fromkeys(languages))
        missing = [lang for lang in wanted if lang not in files]
        if missing:
            raise ValueError(
                f"languages: no file for {missing} in {str(root)!r}; available: {sorted(files)}"
            )
        files = {lang: files[lang] for lang in wanted}
    langs = sorted(files)

    questions: list[Question] = []
    candidates: list[Candidate] = []
    skipped = 0
    for lang in langs:
        f = files[lang]
        seen_ids: dict[str, str] = {}
        try:
            with open(f, encoding="utf-8") as fh:
                doc = json.load(fh)
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: malformed JSON at line {e.lineno}: {e.msg}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{f}: not UTF-8 text ({e.reason})") from None
        data = _field(doc, "data", str(f), list)
        for ai, article in enumerate(data):
            where_a = f"{f}: data[{ai}]"
            for pi, para in enumerate(_field(article, "paragraphs", where_a, list)):
                where = f"{where_a}.paragraphs[{pi}]"
                context = _field(para, "context", where, str)
                breaks = _field(para, "sentence_breaks", where, list)
                base = len(candidates)
                spans: list[tuple[int, int]] = []
                for bi, br in enumerate(breaks):
                    ok = (
                        isinstance(br, list)
                        and len(br) == 2
                        and all(isinstance(x, int) and not isinstance(x, bool) for x in br)
                    )
                    if not ok or not (0 <= br[0] <= br[1] <= len(context)):
                        raise ValueError(
                            f"{where}: field 'sentence_breaks'[{bi}] = {br!r} is out of range "
                            f"for a context of {len(context)} characters"
                        )
                    spans.append((br[0], br[1]))
                    candidates.append(Candidate(lang, context[br[0] : br[1]], context, ai))
                for qi, qa in enumerate(_field(para, "qas", where, list)):
                    where_q = f"{where}.qas[{qi}]"
                    qid = _field(qa, "id", where_q, (str, int))
                    text = _field(qa, "question", where_q, str)
                    answers = _field(qa, "answers", where_q, list)
                    if not answers:
                        raise ValueError(f"{where_q}: field 'answers' is empty")
                    start = _field(answers[0], "answer_start", f"{where_q}.answers[0]", int)
                    hit = next((i for i, (s, e) in enumerate(spans) if s <= start < e), None)
                    if hit is None:
                        skipped += 1
                        continue
                    if str(qid) in seen_ids:
                        raise ValueError(
                            f"{where_q}: id {str(qid)!r} appears twice in language {lang!r} "
                            f"(also at {seen_ids[str(qid)]}); question ids must be unique per "
                            "language"
                        )
                    seen_ids[str(qid)] = where_q
                    questions.append(Question(lang, str(qid), text, base + hit, ai))
    if skipped:
        warnings.warn(
            f"{root}: skipped {skipped} question(s) whose answer lies in no sentence",
            stacklevel=2,
        )
    by_id: dict[str, list[int]] = {}
    for q in questions:
        by_id.setdefault(q.id, []).append(q.answer)
    relevance = [sorted(set(by_id[q.id])) for q in questions]
    return RetrievalSet(langs, questions, candidates, relevance, name=root.name)
