"""hybridrs-eval end to end on a small slice of the real data, and its errors."""

from __future__ import annotations

import json
import shutil

import numpy as np

from hybridrs.cli.eval import eval_main

from .conftest import XQUAD


def _small(tmp_path):
    d = tmp_path / "xq"
    d.mkdir()
    for lang in ("en", "de", "zh"):
        doc = json.loads((XQUAD / f"{lang}.json").read_text())
        doc["data"] = doc["data"][:2]
        (d / f"{lang}.json").write_text(json.dumps(doc))
    return d


def test_eval_tfidf_and_scores(tmp_path, capsys):
    data = _small(tmp_path)
    out = tmp_path / "out"
    assert eval_main(["--data", str(data), "--output_dir", str(out), "--no_progress"]) == 0
    text = capsys.readouterr().out
    assert "mono" in text and "rank distance" in text
    rep = json.loads((out / "xq.json").read_text())
    assert rep["summary"]["n_mono"] == 3 and rep["summary"]["n_cross"] == 6
    assert rep["summary"]["mono"] > rep["summary"]["cross"]
    assert (out / "xq.png").stat().st_size > 1000
    # the language-bias dashboard beside rank distance
    assert "own-language first" in text
    bias = json.loads((out / "xq-bias.json").read_text())
    assert {"max@R", "own_first", "top10_own_share"} <= set(bias["summary"])
    assert len(bias["share_matrix"]["top10"]) == 3
    assert (out / "xq-bias.png").stat().st_size > 1000
    # a score matrix file gives the same numbers as the encoder did
    from hybridrs import load_lareqa
    from hybridrs.models import TfidfEncoder

    s = TfidfEncoder().scores(load_lareqa(data))
    np.save(tmp_path / "s.npy", s)
    out2 = tmp_path / "out2"
    assert (
        eval_main(
            ["--data", str(data), "--scores", str(tmp_path / "s.npy"), "--output_dir", str(out2)]
        )
        == 0
    )
    assert json.loads((out2 / "xq.json").read_text())["summary"] == rep["summary"]


def test_eval_errors(tmp_path, capsys):
    data = _small(tmp_path)
    assert eval_main(["--data", str(tmp_path / "missing"), "--output_dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        eval_main(
            [
                "--data",
                str(data),
                "--encoder",
                "intfloat/multilingual-e5-small",
                "--output_dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "not a local directory" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((3, 3), dtype=np.float32))
    assert (
        eval_main(
            [
                "--data",
                str(data),
                "--scores",
                str(tmp_path / "bad.npy"),
                "--output_dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "scores: has 3 rows" in capsys.readouterr().err
    (tmp_path / "junk.npy").write_text("junk")
    assert (
        eval_main(
            [
                "--data",
                str(data),
                "--scores",
                str(tmp_path / "junk.npy"),
                "--output_dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    shutil.rmtree(data)
