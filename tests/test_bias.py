"""The language-bias dashboard: Rust counts equal the plain-Python reference on real data and
on random tie-heavy cases; the summaries follow their definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hybridrs
from hybridrs import reference
from hybridrs.evaluation.bias import bias_report

from .test_eval_hypothesis import problems


def _same(rep, ref) -> None:
    np.testing.assert_array_equal(rep.max_rank, ref["max_rank"])
    np.testing.assert_array_equal(rep.lang_min_rank, ref["lang_min_rank"])
    np.testing.assert_array_equal(rep.top_counts, ref["top_counts"])


def test_equal_to_reference_on_real_data(xquad, xquad_tfidf):
    rows = np.arange(0, xquad.n_questions, 7)  # 1,870 questions of every language
    ds = xquad.subset(questions=rows.tolist())
    scores = np.ascontiguousarray(xquad_tfidf[rows])
    rep = bias_report(ds, scores, top_k=(1, 10))
    _same(rep, reference.bias_counts(ds, scores, (1, 10)))
    s = rep.summary()
    # TF-IDF (lexical) is strongly language-bound: its top 10 is almost all own-language
    assert s["top10_own_share"] > 0.9 and s["own_pool_share"] < 0.1
    assert 0 <= s["own_first"] <= 1 and s["max@R"] >= 1


def test_embeddings_path_equals_matrix_path(xquad):
    ds = xquad.subset(articles=[0, 1])
    rng = np.random.default_rng(1)
    q = rng.integers(-3, 4, size=(ds.n_questions, 8)).astype(np.float64)
    c = rng.integers(-3, 4, size=(ds.n_candidates, 8)).astype(np.float64)
    a = bias_report(ds, q, c, block_rows=17)
    b = bias_report(ds, q @ c.T)
    _same(a, {"max_rank": b.max_rank, "lang_min_rank": b.lang_min_rank, "top_counts": b.top_counts})


@settings(max_examples=200, deadline=None)
@given(problems(), st.lists(st.integers(1, 8), min_size=1, max_size=3))
def test_equal_to_reference_random(problem, ks):
    ds, scores = problem
    rep = bias_report(ds, scores, top_k=ks)
    _same(rep, reference.bias_counts(ds, scores, ks))


def test_summary_definitions():
    from hybridrs.data import Candidate, Question, RetrievalSet

    cands = [Candidate("de", "a", "", 0), Candidate("de", "b", "", 0), Candidate("en", "c", "", 0)]
    qs = [Question("de", "1", "q", 0, 0), Question("en", "1", "q", 2, 0)]
    ds = RetrievalSet(["de", "en"], qs, cands, [[0, 2], [0, 2]])
    # question 0 (de): own answer first; question 1 (en): the German answer first
    s = np.array([[0.9, 0.1, 0.5], [0.9, 0.1, 0.5]])
    rep = bias_report(ds, s, top_k=(1, 2))
    assert rep.own_first().tolist() == [1.0, 0.0]
    assert rep.max_rank.tolist() == [2, 2]
    assert rep.own_share(1).tolist() == [1.0, 0.0]
    assert rep.own_share(2).tolist() == [0.5, 0.5]
    assert rep.summary()["own_first"] == 0.5
    m = rep.share_matrix(1)
    assert m.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    for bad in ((0,), (1.5,)):
        try:
            bias_report(ds, s, top_k=bad)
        except (ValueError, TypeError) as e:
            assert "top_k" in str(e)
        else:
            raise AssertionError(bad)
    _ = hybridrs
