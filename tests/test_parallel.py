"""load_parallel_qa: JSONL, LAReQA directories, datasets.Dataset, hub names; bad records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from hybridrs import PairPool, load_parallel_qa

from .conftest import XQUAD


def _jsonl(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


GOOD = [
    {"id": "1", "lang": "en", "question": "Who?", "passage": "Ann.", "negatives": ["Bob."]},
    {"id": "1", "lang": "de", "question": "Wer?", "passage": "Anna."},
    {"id": 2, "lang": "en", "question": "Where?", "passage": "Here."},
]


def test_jsonl(tmp_path):
    qa = load_parallel_qa(_jsonl(tmp_path / "a.jsonl", GOOD))
    assert len(qa) == 3 and qa.languages == ("de", "en")
    assert qa.ids == ["1", "1", "2"] and qa.negatives[0] == ["Bob."] and qa.negatives[1] == []
    assert PairPool.from_parallel(qa).n_groups == 2
    only_en = load_parallel_qa(tmp_path / "a.jsonl", languages=["en"])
    assert only_en.langs == ["en", "en"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"id": "3", "lang": "en", "question": "Q"}, "line 4: missing field 'passage'"),
        (
            {"id": "3", "lang": "en", "question": " ", "passage": "P"},
            "line 4: field 'question' is empty",
        ),
        (
            {"id": "3", "lang": "English", "question": "Q", "passage": "P"},
            "line 4: field 'lang' is not a language code",
        ),
        (
            {"id": "1", "lang": "en", "question": "Q", "passage": "P"},
            "line 4: id '1' appears twice in language 'en'",
        ),
        ("{broken", "line 4: malformed JSON"),
        (
            {"id": "3", "lang": "en", "question": "Q", "passage": "P", "negatives": "x"},
            "line 4: field 'negatives'",
        ),
    ],
)
def test_bad_records(tmp_path, bad, match):
    path = _jsonl(tmp_path / "b.jsonl", [*GOOD, bad])
    with pytest.raises(ValueError, match=match):
        load_parallel_qa(path)
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        qa = load_parallel_qa(path, on_error="skip")
    assert len(qa) == 3 and sum(qa.skipped.values()) == 1


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_parallel_qa(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="on_error"):
        load_parallel_qa(_jsonl(tmp_path / "a.jsonl", GOOD), on_error="ignore")
    with pytest.raises(ValueError, match="no usable records"):
        load_parallel_qa(_jsonl(tmp_path / "e.jsonl", [""]))
    with pytest.raises(TypeError, match="expected a JSONL path"):
        load_parallel_qa(42)
    with pytest.raises(ValueError, match="passage"):
        load_parallel_qa(XQUAD, passage="page")


def test_lareqa_directory():
    qa = load_parallel_qa(XQUAD, languages=["en", "de"])
    assert len(qa) == 2380 and PairPool.from_parallel(qa).n_groups == 1190
    assert qa.licence.startswith("Attribution-ShareAlike") or "CC" in qa.licence or qa.licence
    para = load_parallel_qa(XQUAD, languages=["en"], passage="paragraph")
    assert len(para.passages[0]) > len(qa.passages[qa.langs.index("en")])


def test_datasets_dataset_and_hub_name(monkeypatch):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{**r, "id": str(r["id"])} for r in GOOD])
    qa = load_parallel_qa(ds)
    assert len(qa) == 3 and qa.questions[1] == "Wer?"
    with pytest.raises(ValueError, match="row 1: id '1' appears twice"):
        load_parallel_qa(datasets.Dataset.from_list([GOOD[1], GOOD[1]]))
    with pytest.raises(ValueError, match="lacks column"):
        load_parallel_qa(datasets.Dataset.from_list([{"id": "1"}]))
    # a hub name fails fast, with a message that says what to do (no hub here)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"'someone/mlqa-parallel' is not a local file.*unreach"):
        load_parallel_qa("someone/mlqa-parallel")
    assert time.perf_counter() - t < 10
    # in offline mode the real datasets code runs (it would use a local cache) and fails fast
    code = (
        "import hybridrs\n"
        "try:\n    hybridrs.load_parallel_qa('someone/mlqa-parallel')\n"
        "except ValueError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert "could not load dataset 'someone/mlqa-parallel'" in out.stdout, out.stderr
