"""The fused embeddings path (scores computed and counted tile by tile in Rust) on the real
XQuAD-R layout, against the score-matrix path that the sklearn tests pin down."""

from __future__ import annotations

import numpy as np
import pytest

import hybridrs
from hybridrs import _core

pytestmark = pytest.mark.skipif(
    not _core.fused_available(), reason="the fused path needs AVX2 or AVX-512, with FMA"
)


def test_fused_equals_score_matrix_on_real_xquad(xquad):
    # Small integers: every dot product is exact, so q @ c.T (BLAS) and the fused FMA chains
    # give the same scores, with many ties; the per-question metrics must be identical.
    rng = np.random.default_rng(7)
    q = rng.integers(-2, 3, size=(xquad.n_questions, 24)).astype(np.float32)
    c = rng.integers(-2, 3, size=(xquad.n_candidates, 24)).astype(np.float32)
    # Make the relevant candidates score high, as a trained retriever would (compaction on).
    for i in range(0, xquad.n_questions, 3):
        c[xquad.relevant(i)] = q[i]
    want = hybridrs.evaluate(xquad, q @ c.T)
    got = hybridrs.evaluate(xquad, q, c, backend="fused")
    for k in want.per_query:
        np.testing.assert_array_equal(got.per_query[k], want.per_query[k], err_msg=k)
    assert got.summary() == want.summary()
    # In steps with a progress bar (questions handed over from a later first row).
    steps = hybridrs.evaluate(xquad, q, c, backend="fused", progress=True, block_rows=1000)
    np.testing.assert_array_equal(steps.per_query["lang_ap"], want.per_query["lang_ap"])


def test_fused_close_to_blocked_on_float_embeddings(xquad):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((xquad.n_questions, 64), dtype=np.float32)
    c = rng.standard_normal((xquad.n_candidates, 64), dtype=np.float32)
    c[xquad.relevant(0)] += 3 * q[0]
    a = hybridrs.evaluate(xquad, q, c, backend="fused").summary()
    b = hybridrs.evaluate(xquad, q, c, backend="blocked").summary()
    assert a.keys() == b.keys()
    for k in a:
        # Scores differ at most in the last bit (summation order), so only near-ties move.
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k


def test_auto_backend_and_errors(tiny_set):
    q = np.ones((2, 4), dtype=np.float32)
    c = np.ones((3, 4), dtype=np.float32)
    auto = hybridrs.evaluate(tiny_set, q, c)
    fused = hybridrs.evaluate(tiny_set, q, c, backend="fused")
    assert auto.summary() == fused.summary()
    with pytest.raises(ValueError, match="backend: must be one of"):
        hybridrs.evaluate(tiny_set, q, c, backend="gpu")
    with pytest.raises(ValueError, match="backend: 'fused' needs float32"):
        hybridrs.evaluate(tiny_set, q.astype(np.float64), c, backend="fused")
    bad = c.copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite .* row 0, column 2"):
        hybridrs.evaluate(tiny_set, q, bad, backend="fused")
    with pytest.raises(ValueError, match="exceed"):
        _core.query_metrics_embeddings(
            q,
            c,
            1,
            tiny_set.relevance_indptr,
            tiny_set.relevance_indices,
            tiny_set.lang_offsets,
            [1],
            1,
            "R",
        )
    with pytest.raises(TypeError, match="query_embeddings: expected a 2-d numpy array of float32"):
        _core.query_metrics_embeddings(
            q.astype(np.float64),
            c,
            0,
            tiny_set.relevance_indptr,
            tiny_set.relevance_indices,
            tiny_set.lang_offsets,
            [1],
            1,
            "R",
        )


@pytest.fixture()
def tiny_set():
    from hybridrs.data import Candidate, Question, RetrievalSet

    cands = [Candidate("de", "a", "", 0), Candidate("de", "b", "", 0), Candidate("en", "c", "", 0)]
    qs = [Question("de", "1", "q1", 0, 0), Question("en", "1", "q1", 2, 0)]
    return RetrievalSet(["de", "en"], qs, cands, [[0, 2], [0, 2]])
