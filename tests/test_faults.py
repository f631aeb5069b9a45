"""The fault probe's cases (issue: nothing lost, nothing panics), each a test that failed
before its fix: Rust arithmetic and allocations reached by input, loaders that accepted what
they should refuse, wrong or missing names in messages, command-line tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hybridrs
from hybridrs import HybridBatchSampler, PairPool
from hybridrs.cli.eval import eval_main
from hybridrs.data import Candidate, Question, RetrievalSet

from .test_data import _para, _write


def _pool(n_groups: int = 40) -> PairPool:
    ids = [g for g in range(n_groups) for _ in range(3)]
    langs = ["de", "en", "zh"] * n_groups
    return PairPool.from_arrays(ids, langs)


# -- 1. sampler sizes: no panic, no silent wrap ---------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 2**32, "world_size": 2**32}, "batch_size: batch_size \\* world_size"),
        ({"batch_size": 2**62 + 1, "world_size": 4, "rank": 1}, "overflows"),
        ({"batch_size": 2**64}, "batch_size: must lie in"),
        ({"batch_size": 4, "world_size": 2**70}, "world_size: must lie in"),
        ({"batch_size": 4, "seed": 2**64}, "seed: must lie in"),
        ({"batch_size": 2.5}, "batch_size: expected an integer"),
    ],
)
def test_sampler_size_arithmetic(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        HybridBatchSampler(_pool(), **kw)


def test_language_weights_errors_name_the_weights():
    with pytest.raises(ValueError, match="language_weights: all weights are 0"):
        HybridBatchSampler(_pool(), 4, language_weights={"de": 0, "en": 0, "zh": 0})
    # huge finite weights do not overflow the cumulative sum: draws follow the weights
    s = HybridBatchSampler(
        _pool(), 4, strategy="mono", language_weights={"de": 1e308, "en": 1e308, "zh": 0.0}
    )
    modes = set(s.plan()["modes"].tolist())
    assert modes and modes <= {0, 1}


# -- 2. allocations the input decides: MemoryError, never an abort --------------------------------
def test_huge_recall_cutoff_list_is_a_memory_error_not_an_abort():
    code = """
import numpy as np, hybridrs
from hybridrs.data import Candidate, Question, RetrievalSet
n = 100_000
cands = [Candidate("de", "a", "", 0), Candidate("en", "b", "", 0)]
qs = [Question("de", str(i), "q", 0, 0) for i in range(n)]
ds = RetrievalSet(["de", "en"], qs, cands, [[0]] * n)
s = np.zeros((n, 2), dtype=np.float32)
try:
    hybridrs.evaluate(ds, s, recall_at=range(1, 1_000_001))
except MemoryError as e:
    print("MemoryError:", e)
print("alive")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MemoryError: recall_at" in out.stdout and "alive" in out.stdout


# -- 4. one id twice in one language: refused by both loaders --------------------------------------
def test_lareqa_duplicate_id_in_one_language(tmp_path):
    doc = _para()
    second = json.loads(json.dumps(doc["data"][0]["paragraphs"][0]))
    second["qas"][0]["question"] = "Another question?"
    doc["data"][0]["paragraphs"].append(second)
    _write(tmp_path, "en", doc)
    with pytest.raises(ValueError, match=r"en\.json: .*id 'q1' appears twice in language 'en'"):
        hybridrs.load_lareqa(tmp_path)
    with pytest.raises(ValueError, match="appears twice"):
        hybridrs.load_parallel_qa(tmp_path)


# -- 10. loaders: what they used to accept ---------------------------------------------------------
def test_lareqa_file_names_and_types(tmp_path):
    _write(tmp_path / "a", "dev-en", _para())
    with pytest.raises(ValueError, match="cannot tell the language from the file name"):
        hybridrs.load_lareqa(tmp_path / "a")
    (tmp_path / "b" / "de.json").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"is a directory, not a <lang>\.json file"):
        hybridrs.load_lareqa(tmp_path / "b")
    doc = _para()
    doc["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = True
    _write(tmp_path / "c", "en", doc)
    with pytest.raises(ValueError, match="'answer_start' must be int, got bool"):
        hybridrs.load_lareqa(tmp_path / "c")
    _write(tmp_path / "d", "zh-Hans", _para())
    assert hybridrs.load_lareqa(tmp_path / "d").languages == ("zh-Hans",)


def test_parallel_languages_string_and_non_utf8(tmp_path):
    recs = [
        {"id": 1, "lang": "en", "question": "Who?", "passage": "Him."},
        {"id": 1, "lang": "de", "question": "Wer?", "passage": "Er."},
    ]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    qa = hybridrs.load_parallel_qa(p, languages="en")
    assert qa.langs == ["en"]
    p.write_bytes(
        p.read_bytes() + b'{"id": 2, "lang": "en", "question": "Wh\xff?", "passage": "x"}\n'
    )
    with pytest.raises(ValueError, match=r"d\.jsonl: line 3: not UTF-8 text \(byte 0xff"):
        hybridrs.load_parallel_qa(p)
    with pytest.warns(UserWarning, match="not UTF-8 x1"):
        qa = hybridrs.load_parallel_qa(p, on_error="skip")
    assert len(qa) == 2 and qa.skipped == {"not UTF-8": 1}


def test_pool_type_checks_every_row_and_names_user_ids():
    langs = ["en"] * 1000 + [None]
    with pytest.raises(TypeError, match="langs: row 1000 is None"):
        PairPool.from_arrays(list(range(1001)), langs)
    for bad in (float("nan"), "", b"en"):
        with pytest.raises(TypeError, match="langs: row 1 is"):
            PairPool.from_arrays([1, 2], np.array(["en", bad], dtype=object))
    with pytest.raises(ValueError, match="rows 0 and 2 are both group 'q1' in language 'en'"):
        PairPool.from_arrays(["q1", "q2", "q1"], ["en", "de", "en"])


# -- 10. evaluator arguments and messages ----------------------------------------------------------
@pytest.fixture()
def tiny() -> RetrievalSet:
    langs = ["de", "en"]
    cands = [Candidate("de", "a", "", 0), Candidate("de", "b", "", 0), Candidate("en", "c", "", 0)]
    qs = [Question("de", str(i), "q", 0, 0) for i in range(100)]
    return RetrievalSet(langs, qs, cands, [[0]] * 100)


def test_nan_in_blocked_path_names_the_question(tiny):
    q = np.ones((100, 4), dtype=np.float64)
    c = np.ones((3, 4), dtype=np.float64)
    q[95, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 95, column 0"):
        hybridrs.evaluate(tiny, q, c, block_rows=10, backend="blocked")


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"recall_at": (1.5,)}, TypeError, "recall_at: expected an integer, got 1.5"),
        ({"map_at": 1.9}, TypeError, "map_at: expected an integer, got 1.9"),
        ({"recall_at": (2**64,)}, ValueError, "recall_at: must lie in"),
        ({"map_at": 2**70}, ValueError, "map_at: must lie in"),
        ({"recall_at": 10}, TypeError, "recall_at: expected a sequence"),
    ],
)
def test_cutoffs_are_checked_not_truncated(tiny, kw, err, match):
    with pytest.raises(err, match=match):
        hybridrs.evaluate(tiny, np.ones((100, 3), dtype=np.float32), **kw)


# -- 9. hybridrs-eval: an error line and status 2, never a traceback -------------------------------
def test_eval_cli_bad_inputs(tmp_path, capsys):
    from .conftest import XQUAD

    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    npz = tmp_path / "s.npz"
    np.savez(npz, s=np.ones((2, 2)))
    for argv, msg in [
        (["--scores", str(empty)], "cannot read"),
        (["--scores", str(npz)], "is an .npz archive"),
        (["--scores", str(tmp_path)], "is a directory"),
    ]:
        assert eval_main(["--data", str(XQUAD), *argv, "--output_dir", str(tmp_path)]) == 2
        assert "hybridrs-eval: error: --scores" in capsys.readouterr().err and msg
    for argv in (["--batch_size", "0"], ["--recall_at", "0"], ["--map_at", "-1"]):
        with pytest.raises(SystemExit) as e:
            eval_main(["--data", str(XQUAD), *argv])
        assert e.value.code == 2
        assert "must be >= 1" in capsys.readouterr().err


def test_readme_guarantees_section_exists():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "## Guarantees" in text
