"""The LAReQA data layer: sizes and semantics on the real sets, subsets, clear errors."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

import hybridrs

from .conftest import XQUAD


def test_xquad_sizes(xquad):
    assert xquad.languages == ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    assert (xquad.n_questions, xquad.n_candidates) == (13090, 13014)
    assert all(len(xquad.questions_of(lang)) == 1190 for lang in xquad.languages)
    # fully parallel: every question is relevant to its answer in all 11 languages
    assert np.all(np.diff(xquad.relevance_indptr) == 11)


def test_mlqa_sizes(mlqa):
    assert mlqa.languages == ("ar", "de", "en", "es", "hi", "vi", "zh")
    assert (mlqa.n_questions, mlqa.n_candidates) == (4199, 20534)
    sizes = np.diff(mlqa.relevance_indptr)
    assert sizes.min() >= 1 and sizes.max() <= 7 and sizes.min() < sizes.max()


def test_semantics(xquad):
    # languages sorted, candidates grouped by language in that order
    assert list(xquad.languages) == sorted(xquad.languages)
    assert np.all(np.diff(xquad.candidate_lang) >= 0)
    q = xquad.questions[0]
    c = xquad.candidates[q.answer]
    assert c.lang == q.lang == "ar" and c.text in c.context
    # relevance = the answer sentences of the questions sharing the id, in every language
    same = [x.answer for x in xquad.questions if x.id == q.id]
    assert sorted(same) == xquad.relevant(0).tolist()
    en = next(x for x in xquad.questions if x.lang == "en")
    cand = xquad.candidates[en.answer]
    start = json.loads((XQUAD / "en.json").read_text())["data"][0]["paragraphs"][0]
    assert cand.context == start["context"]


def test_subset(xquad):
    sub = xquad.subset(languages=["en", "de"])
    assert sub.languages == ("de", "en")
    assert sub.n_questions == 2380
    assert sub.n_candidates == len(xquad.candidates_of("en")) + len(xquad.candidates_of("de"))
    assert np.all(np.diff(sub.relevance_indptr) == 2)
    for i in (0, 1500):
        q = sub.questions[i]
        assert all(sub.candidates[c].lang in ("de", "en") for c in sub.relevant(i))
        assert (
            sub.candidates[q.answer].text
            == xquad.candidates[
                next(x for x in xquad.questions if x.id == q.id and x.lang == q.lang).answer
            ].text
        )
    few = xquad.subset(questions=[0, 5, 13089])
    assert few.n_questions == 3 and few.n_candidates == xquad.n_candidates
    np.testing.assert_array_equal(few.relevant(2), xquad.relevant(13089))
    art = xquad.subset(articles=[0, 1])
    assert set(art.question_lang.tolist()) == set(range(11))
    assert np.all(np.diff(art.relevance_indptr) == 11)
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        xquad.subset(languages=["xx"])
    with pytest.raises(ValueError, match="questions: indices"):
        xquad.subset(questions=[99999])
    assert xquad.fingerprint() == hybridrs.load_lareqa(XQUAD).fingerprint()
    assert xquad.fingerprint() != sub.fingerprint()


def _write(dirpath: Path, lang: str, doc: object) -> None:
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / f"{lang}.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)


def _para(context="One. Two.", breaks=([0, 4], [5, 9]), start=5, qid="q1"):
    return {
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": context,
                        "sentences": [],
                        "sentence_breaks": [list(b) for b in breaks],
                        "qas": [
                            {
                                "id": qid,
                                "question": "Which?",
                                "answers": [{"text": "Two", "answer_start": start}],
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_small_set_and_skip_warning(tmp_path):
    _write(tmp_path, "en", _para())
    _write(tmp_path, "de", _para(start=100))  # answer in no sentence: skipped
    with pytest.warns(UserWarning, match="skipped 1 question"):
        ds = hybridrs.load_lareqa(tmp_path)
    assert ds.languages == ("de", "en") and ds.n_questions == 1 and ds.n_candidates == 4
    assert ds.candidates[ds.questions[0].answer].text == "Two."
    assert ds.relevant(0).tolist() == [3]


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "no <lang>.json files"),
        ({"en": "{not json"}, r"en.json: malformed JSON at line 1"),
        ({"en": {"nodata": []}}, r"en.json: missing field 'data'"),
        ({"en": _para(breaks=([0, 4], [5, 99]))}, r"'sentence_breaks'\[1\].*out of range"),
        ({"en": _para(breaks=([0, "x"],))}, r"'sentence_breaks'\[0\]"),
        (
            {
                "en": {
                    "data": [
                        {
                            "paragraphs": [
                                {
                                    "context": "x",
                                    "sentence_breaks": [[0, 1]],
                                    "qas": [{"id": "1", "question": "q"}],
                                }
                            ]
                        }
                    ]
                }
            },
            r"qas\[0\]: missing field 'answers'",
        ),
        ({"en": _para(start=100)}, "no questions"),
    ],
)
def test_bad_input(tmp_path, files, match):
    tmp_path.mkdir(exist_ok=True)
    for lang, doc in files.items():
        _write(tmp_path, lang, doc)
    skip_warning = pytest.warns(UserWarning) if "no questions" in match else nullcontext()
    with pytest.raises(ValueError, match=match), skip_warning:
        hybridrs.load_lareqa(tmp_path)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        hybridrs.load_lareqa(tmp_path / "nope")
    f = tmp_path / "file.json"
    f.write_text("{}")
    with pytest.raises(ValueError, match="not a directory"):
        hybridrs.load_lareqa(f)
    d = tmp_path / "two"
    _write(d, "en", _para())
    _write(d, "dev.en", _para())
    with pytest.raises(ValueError, match="two files for language 'en'"):
        hybridrs.load_lareqa(d)
    with pytest.raises(ValueError, match=r"languages: no file for \['fr'\]"):
        hybridrs.load_lareqa(XQUAD, languages=["fr"])
