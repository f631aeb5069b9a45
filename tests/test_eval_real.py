"""The Rust evaluator against scikit-learn on the real XQuAD-R and MLQA-R, for TF-IDF scores."""

from __future__ import annotations

import numpy as np
import pytest

import hybridrs
from hybridrs import reference

from ._sklearn_oracle import sklearn_oracle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def xquad_oracle(xquad, xquad_tfidf):
    return sklearn_oracle(xquad, xquad_tfidf)


@pytest.fixture(scope="session")
def mlqa_oracle(mlqa, mlqa_tfidf):
    return sklearn_oracle(mlqa, mlqa_tfidf)


def _check(report, oracle, n_langs):
    # every pair setting, its question count, the pooled setting and the summary
    np.testing.assert_array_equal(report.pair_n, oracle["pair_n"])
    np.testing.assert_allclose(report.pair_map, oracle["pair"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(report.multi_map, oracle["multi"], rtol=0, atol=1e-9)
    # rank distance: exactly the plain definition
    np.testing.assert_array_equal(report.per_query["rank_distance"], oracle["rd"])
    np.testing.assert_array_equal(report.rank_distance_by_lang, oracle["rank_distance"])
    np.testing.assert_allclose(report.per_query["ap"], oracle["ap"], rtol=0, atol=1e-9)
    lang_ap = report.per_query["lang_ap"].reshape(-1, n_langs)
    np.testing.assert_allclose(lang_ap, oracle["lang_ap"], rtol=0, atol=1e-9)
    s = report.summary()
    for key, want in oracle["summary"].items():
        assert s[key] == pytest.approx(want, abs=1e-9), key


def test_xquad_matches_sklearn(xquad, xquad_tfidf, xquad_oracle):
    report = hybridrs.evaluate(xquad, xquad_tfidf)
    assert report.summary()["n_mono"] == 11
    assert report.summary()["n_cross"] == 110
    _check(report, xquad_oracle, 11)


def test_mlqa_matches_sklearn(mlqa, mlqa_tfidf, mlqa_oracle):
    report = hybridrs.evaluate(mlqa, mlqa_tfidf)
    s = report.summary()
    assert (s["n_mono"], s["n_cross"]) == (7, 42)
    # MLQA-R questions exist only in some languages: settings count their own questions
    assert report.pair_n.min() < report.pair_n.max()
    _check(report, mlqa_oracle, 7)


def test_float64_and_embeddings_paths_agree(xquad, xquad_tfidf):
    a = hybridrs.evaluate(xquad, xquad_tfidf)
    b = hybridrs.evaluate(xquad, xquad_tfidf.astype(np.float64))
    np.testing.assert_allclose(a.pair_map, b.pair_map, atol=1e-12)
    # Embeddings path: identity "candidates" turn q @ c.T into the score matrix itself.
    sub = xquad.subset(languages=["en", "de", "zh"])
    rows = np.flatnonzero(
        np.isin(xquad.question_lang, [xquad.languages.index(x) for x in ("de", "en", "zh")])
    )
    cols = np.concatenate(
        [
            np.arange(*[int(v) for v in (xquad.lang_offsets[i], xquad.lang_offsets[i + 1])])
            for i in (1, 3, 10)
        ]
    )
    s = np.ascontiguousarray(xquad_tfidf[np.ix_(rows, cols)], dtype=np.float64)
    full = hybridrs.evaluate(sub, s)
    emb = hybridrs.evaluate(sub, s, np.eye(s.shape[1]), block_rows=97)
    np.testing.assert_array_equal(full.pair_map, emb.pair_map)
    np.testing.assert_array_equal(full.rank_distance_by_lang, emb.rank_distance_by_lang)


def test_reference_matches_rust_on_real_subset(xquad, xquad_tfidf):
    idx = np.arange(0, xquad.n_questions, 37)
    sub = xquad.subset(questions=idx)
    s = xquad_tfidf[idx]
    rust = hybridrs.evaluate(sub, s, recall_at=(1, 5, 10), map_at=10)
    ref = reference.evaluate_scores(sub, s, recall_at=(1, 5, 10), map_at=10)
    np.testing.assert_allclose(rust.pair_map, ref["pair_map"], atol=1e-12)
    np.testing.assert_allclose(rust.pair_recall, ref["pair_recall"], atol=1e-12)
    np.testing.assert_allclose(rust.pair_map_at_k, ref["pair_map_at_k"], atol=1e-12)
    np.testing.assert_allclose(rust.multi_recall, ref["multi_recall"], atol=1e-12)
    np.testing.assert_allclose(rust.multi_map_at_k, ref["multi_map_at_k"], atol=1e-12)
