"""Bad input to the evaluator gets a clear error naming the field, never a panic."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hybridrs
from hybridrs import _core
from hybridrs.data import Candidate, Question, RetrievalSet


@pytest.fixture()
def tiny():
    langs = ["de", "en"]
    cands = [Candidate("de", "a", "", 0), Candidate("de", "b", "", 0), Candidate("en", "c", "", 0)]
    qs = [Question("de", "1", "q1", 0, 0), Question("en", "1", "q1", 2, 0)]
    return RetrievalSet(langs, qs, cands, [[0, 2], [0, 2]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(tiny, bad):
    s = np.ones((2, 3), dtype=np.float32)
    s[1, 2] = bad
    with pytest.raises(ValueError, match=r"scores: non-finite .* row 1, column 2"):
        hybridrs.evaluate(tiny, s)


def test_wrong_shape_and_dtype(tiny):
    with pytest.raises(ValueError, match="scores: has 2 columns"):
        hybridrs.evaluate(tiny, np.ones((2, 2)))
    with pytest.raises(ValueError, match="scores: has 3 rows"):
        hybridrs.evaluate(tiny, np.ones((3, 3)))
    with pytest.raises(ValueError, match="2-d"):
        hybridrs.evaluate(tiny, np.ones(6))
    with pytest.raises(TypeError, match="float32 or float64"):
        hybridrs.evaluate(tiny, np.ones((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        hybridrs.evaluate(tiny, np.ones((2, 3), dtype=np.float16))
    with pytest.raises(TypeError, match="numpy array"):
        hybridrs.evaluate(tiny, [[1.0, 2.0, 3.0]] * 2)
    with pytest.raises(ValueError, match="dimension"):
        hybridrs.evaluate(tiny, np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="candidate_embeddings: has 4 rows"):
        hybridrs.evaluate(tiny, np.ones((2, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="map_norm"):
        hybridrs.evaluate(tiny, np.ones((2, 3)), map_norm="bogus")
    with pytest.raises(ValueError, match="recall_at"):
        hybridrs.evaluate(tiny, np.ones((2, 3)), recall_at=(0,))


def test_core_rejects_bad_arrays(tiny):
    s = np.ones((2, 3))
    args = (tiny.relevance_indptr, tiny.relevance_indices, tiny.lang_offsets, [1], 1, "R")
    with pytest.raises(TypeError, match="scores"):
        _core.query_metrics(s.astype(np.int32), 0, *args)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.query_metrics(np.ones((3, 2)).T, 0, *args)
    with pytest.raises(ValueError, match="exceed"):
        _core.query_metrics(s, 1, *args)
    with pytest.raises(ValueError, match="relevance_indices"):
        _core.query_metrics(
            s, 0, tiny.relevance_indptr, np.array([0, 9, 0, 1]), tiny.lang_offsets, [1], 1, "R"
        )
    with pytest.raises(TypeError, match="relevance_indptr"):
        _core.query_metrics(
            s,
            0,
            tiny.relevance_indptr.astype(np.int32),
            tiny.relevance_indices,
            tiny.lang_offsets,
            [1],
            1,
            "R",
        )
    with pytest.raises(ValueError, match="lang_offsets"):
        _core.query_metrics(
            s, 0, tiny.relevance_indptr, tiny.relevance_indices, np.array([0, 3, 2]), [1], 1, "R"
        )


def test_non_contiguous_and_torch_inputs_are_accepted(tiny):
    s = np.asfortranarray(np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]]))
    a = hybridrs.evaluate(tiny, s)
    b = hybridrs.evaluate(tiny, np.ascontiguousarray(s))
    np.testing.assert_array_equal(a.pair_map, b.pair_map)


def test_report_outputs(tiny, tmp_path):
    r = hybridrs.evaluate(tiny, np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]]))
    assert r.mono[("de", "de")] == 1.0
    assert r.cross[("en", "de")] == 0.5
    assert r.recall(1)["multi"]["de"] == 0.5
    with pytest.raises(ValueError, match="recall was computed"):
        r.recall(3)
    r.to_json(tmp_path / "r.json")
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["summary"]["n_mono"] == 2 and len(d["pairs"]) == 4
    r.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "mono" in r.table() and "EvalReport" in repr(r)


def test_no_recall_cutoffs_keeps_every_question(tiny):
    # An empty recall list once left the per-question outputs short and every metric 0.
    s = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]], dtype=np.float32)
    a = hybridrs.evaluate(tiny, s, recall_at=())
    b = hybridrs.evaluate(tiny, s)
    assert a.summary()["multi"] == b.summary()["multi"] > 0
    assert "multi_recall@1" not in a.summary()
