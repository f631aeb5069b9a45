"""Subsets and splits: the evaluation subset used on CPU, and the validation split of a LAReQA
training set (whole articles held out, for choosing settings off the test sets)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .lareqa import RetrievalSet, load_lareqa
from .parallel import ParallelQA

__all__ = ["CPU_EVAL_ARTICLES", "eval_subset", "split_validation", "validation_set"]

#: XQuAD-R articles are parallel across languages: every 6th of the 48 keeps whole articles in
#: all 11 languages (8 articles, about 1/6 of the set), the same every run.
CPU_EVAL_ARTICLES = "0,6,12,18,24,30,36,42"


def eval_subset(
    ds: RetrievalSet,
    languages: Sequence[str] | None = None,
    articles: str = "auto",
    max_questions_per_language: int = 0,
    on_cpu: bool = True,
) -> RetrievalSet:
    """The evaluation subset of ``ds``.

    Args:
        languages: Keep these languages (those ``ds`` has).
        articles: ``"auto"`` (:data:`CPU_EVAL_ARTICLES` on CPU for a parallel set, else all),
            ``"all"`` or comma-separated article indices (whole articles keep ids parallel).
        max_questions_per_language: Keep at most this many question ids per language, the
            same ids every run (chosen by hash); 0 keeps all. On CPU a non-parallel set with
            all articles gets 200.
        on_cpu: Whether evaluation runs on a CPU (decides ``"auto"``).
    """
    if languages:
        ds = ds.subset(languages=[lang for lang in languages if lang in ds.languages])
    n_articles = {
        lang: max(c.article for c in ds.candidates if c.lang == lang) + 1 for lang in ds.languages
    }
    parallel = len(set(n_articles.values())) == 1
    if articles == "auto":
        articles = CPU_EVAL_ARTICLES if on_cpu and parallel else "all"
    k = max_questions_per_language
    if articles != "all":
        try:
            keep = [int(a) for a in articles.split(",")]
        except ValueError:
            raise ValueError(
                f"eval_articles: expected 'auto', 'all' or indices, got {articles!r}"
            ) from None
        ds = ds.subset(articles=keep)
    elif on_cpu and not parallel and k == 0:
        k = 200
    if k > 0:
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


def validation_set(train_data: str | Path, fraction: float) -> RetrievalSet:
    """The held-out part of a LAReQA training set (see :func:`split_validation`) as a
    retrieval set: the questions of every ``round(1 / fraction)``-th article (by the articles
    of its English questions, or its first language's), in every language, against the
    sentences of their paragraphs. The same set for every seed.

    Raises:
        ValueError: ``train_data`` is not a LAReQA directory.
    """
    path = Path(train_data)
    if not path.is_dir():
        raise ValueError("validation_split: needs a LAReQA directory as train_data")
    rs = load_lareqa(path)
    pivot = "en" if "en" in rs.languages else rs.languages[0]
    every = max(2, round(1 / fraction))
    held = {q.id for q in rs.questions if q.lang == pivot and q.article % every == every - 1}
    qs = [i for i, q in enumerate(rs.questions) if q.id in held]
    contexts = {
        (rs.candidates[int(c)].lang, rs.candidates[int(c)].context)
        for i in qs
        for c in rs.relevant(i)
    }
    cands = [j for j, c in enumerate(rs.candidates) if (c.lang, c.context) in contexts]
    val = rs.subset(questions=qs, candidates=cands)
    val.name = f"{rs.name}-validation"
    return val


def split_validation(
    qa: ParallelQA, train_data: str | Path, fraction: float
) -> tuple[ParallelQA, RetrievalSet]:
    """Holds out whole articles of a LAReQA training set: the training pairs without those
    question ids, and the retrieval set of the held-out questions (:func:`validation_set`).
    For choosing hyperparameters without touching the test sets.

    Args:
        qa: The training pairs loaded from ``train_data``.
        train_data: The LAReQA directory they came from.
        fraction: Share of articles held out (every ``round(1 / fraction)``-th article).
    """
    val = validation_set(train_data, fraction)
    held = {q.id for q in val.questions}
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
    return train, val
