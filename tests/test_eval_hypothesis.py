"""Property tests: the Rust kernel equals the plain reference on random, tie-heavy inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hybridrs
from hybridrs import reference
from hybridrs.data import Candidate, Question, RetrievalSet

FIELDS = ["pair_map", "pair_map_at_k", "pair_recall", "multi_map", "multi_map_at_k", "multi_recall"]


@st.composite
def problems(draw):
    n_langs = draw(st.integers(1, 4))
    langs = [f"l{i}" for i in range(n_langs)]
    per_lang = [draw(st.integers(1 if i == 0 else 0, 6)) for i in range(n_langs)]
    cands = [
        Candidate(lang, f"c{j}", "", 0)
        for lang, n in zip(langs, per_lang, strict=False)
        for j in range(n)
    ]
    nc = len(cands)
    nq = draw(st.integers(1, 8))
    questions, relevance = [], []
    for i in range(nq):
        lang = draw(st.sampled_from(langs))
        rel = sorted(draw(st.sets(st.integers(0, nc - 1), min_size=0, max_size=nc)))
        questions.append(Question(lang, str(i), f"q{i}", rel[0] if rel else 0, 0))
        relevance.append(rel)
    ds = RetrievalSet(langs, questions, cands, relevance)
    # few distinct values: many ties
    levels = draw(st.integers(1, 4))
    scores = np.array(
        draw(st.lists(st.integers(0, levels), min_size=nq * nc, max_size=nq * nc)), dtype=np.float64
    ).reshape(nq, nc)
    scale = draw(st.sampled_from([1.0, 0.1, -3.5]))
    return ds, scores * scale


@settings(max_examples=300, deadline=None)
@given(problems(), st.sampled_from(["R", "min(k,R)"]), st.integers(1, 5))
def test_rust_equals_reference(problem, norm, k):
    ds, scores = problem
    rust = hybridrs.evaluate(ds, scores, recall_at=(1, k), map_at=k, map_norm=norm)
    ref = reference.evaluate_scores(ds, scores, recall_at=(1, k), map_at=k, map_norm=norm)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(rust, f), ref[f], atol=1e-12, equal_nan=True, err_msg=f)
    np.testing.assert_array_equal(rust.pair_n, ref["pair_n"])
    np.testing.assert_array_equal(rust.multi_n, ref["multi_n"])
    np.testing.assert_allclose(rust.rank_distance_by_lang, ref["rank_distance"], equal_nan=True)
    np.testing.assert_allclose(rust.multi_micro, ref["multi_micro"], equal_nan=True)
    # float32 gives the same answers on these exactly representable values
    rust32 = hybridrs.evaluate(
        ds, scores.astype(np.float32), recall_at=(1, k), map_at=k, map_norm=norm
    )
    np.testing.assert_allclose(rust32.pair_map, rust.pair_map, atol=1e-12, equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=40), st.data())
def test_single_query_ap_equals_sklearn(values, data):
    from sklearn.metrics import average_precision_score

    scores = np.array(values, dtype=np.float64)
    n = scores.size
    rel = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    rel = np.array(rel, dtype=bool)
    if not rel.any():
        rel[data.draw(st.integers(0, n - 1))] = True
    ds = RetrievalSet(
        ["xx"],
        [Question("xx", "0", "q", 0, 0)],
        [Candidate("xx", str(j), "", 0) for j in range(n)],
        [np.flatnonzero(rel).tolist()],
    )
    r = hybridrs.evaluate(ds, scores[None, :])
    want = average_precision_score(rel, scores)
    assert abs(r.per_query["ap"][0] - want) < 1e-12
    assert r.pair_map[0, 0] == r.per_query["ap"][0]


def test_one_candidate_and_no_relevant():
    ds = RetrievalSet(
        ["a", "b"],
        [Question("a", "0", "q", 0, 0), Question("b", "1", "q", 1, 0)],
        [Candidate("a", "x", "", 0), Candidate("b", "y", "", 0)],
        [[0], [1]],
    )
    r = hybridrs.evaluate(ds, np.array([[0.3, 0.3], [0.1, 0.2]]))
    # question 0 has nothing relevant in language b: left out of (a, b)
    assert r.n_questions("a", "b") == 0 and ("a", "b") not in r.cross
    assert r.mono == {("a", "a"): 1.0, ("b", "b"): 1.0}
    assert r.multi == {"a": 0.5, "b": 1.0}
    one = RetrievalSet(["a"], [Question("a", "0", "q", 0, 0)], [Candidate("a", "x", "", 0)], [[0]])
    assert hybridrs.evaluate(one, np.array([[1.0]])).summary()["multi"] == 1.0


@settings(max_examples=100, deadline=None)
@given(problems(), st.integers(1, 40), st.integers(0, 2**32 - 1), st.integers(1, 9))
def test_blocked_embeddings_path_equals_the_scores_form(problem, dim, seed, rows):
    """The blocked path (one worker thread per core, each a single-threaded BLAS block counted
    at once on its own thread, blocks taken in any order) gives the per-question metrics of the
    whole score matrix bit for bit, whatever the block size (small-integer embeddings: exact
    dot products in any summation order)."""
    ds, _ = problem
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, size=(ds.n_questions, dim)).astype(np.float32)
    c = rng.integers(-2, 3, size=(ds.n_candidates, dim)).astype(np.float32)
    whole = hybridrs.evaluate(ds, q @ c.T, keep_per_query=True)
    blocked = hybridrs.evaluate(ds, q, c, backend="blocked", block_rows=rows, keep_per_query=True)
    assert whole.per_query is not None and blocked.per_query is not None
    for k in whole.per_query:
        np.testing.assert_array_equal(blocked.per_query[k], whole.per_query[k], err_msg=k)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(blocked, f), getattr(whole, f), err_msg=f)


def test_single_thread_kernel_equals_the_pool_from_many_threads():
    """``single_thread=True`` (the calling thread as the only worker, the blocked path's
    counting) gives the pool's result bit for bit, called from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    from hybridrs import _core

    rng = np.random.default_rng(3)
    nq, nc = 300, 257
    offsets = np.array([0, 90, 200, nc], dtype=np.int64)
    indptr = np.arange(0, 2 * nq + 1, 2, dtype=np.int64)
    indices = rng.integers(0, nc, size=2 * nq).astype(np.int64)
    indices[1::2] = (indices[0::2] + 1) % nc
    scores = rng.standard_normal((nq, nc)).astype(np.float32)
    scores[:, ::7] = 0.25  # ties
    common = (indptr, indices, offsets, [1, 10], 10, "R")
    want = _core.query_metrics(scores, 0, *common)

    def block(a: int) -> dict:
        return _core.query_metrics(scores[a : a + 50], a, *common, single_thread=True)

    for _ in range(3):
        with ThreadPoolExecutor(4) as ex:
            parts = list(ex.map(block, range(0, nq, 50)))
        for k in want:
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), want[k])


@settings(max_examples=200, deadline=None)
@given(problems(), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_fused_embeddings_path_equals_reference(problem, dim, seed):
    """Small-integer embeddings give exact dot products in any summation order, so the fused
    path (its own FMA microkernel), the blocked path and the reference see the same scores."""
    if not hybridrs._core.fused_available():
        return
    ds, _ = problem
    rng = np.random.default_rng(seed)
    q = rng.integers(-2, 3, size=(ds.n_questions, dim)).astype(np.float32)
    c = rng.integers(-2, 3, size=(ds.n_candidates, dim)).astype(np.float32)
    fused = hybridrs.evaluate(ds, q, c, backend="fused", block_rows=int(rng.integers(1, 9)))
    blocked = hybridrs.evaluate(ds, q, c, backend="blocked")
    ref = reference.evaluate_scores(ds, (q @ c.T).astype(np.float64))
    for f in FIELDS:
        np.testing.assert_allclose(getattr(fused, f), ref[f], atol=1e-12, equal_nan=True, err_msg=f)
    for k in fused.per_query:
        np.testing.assert_array_equal(fused.per_query[k], blocked.per_query[k], err_msg=k)
    np.testing.assert_allclose(fused.rank_distance_by_lang, ref["rank_distance"], equal_nan=True)
