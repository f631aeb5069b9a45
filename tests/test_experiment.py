"""hybridrs-compare with a tiny model: the grid runs, writes per-question results and the
paired table; a killed experiment continues where it stopped (finished cells skipped, the
interrupted one resumed from its checkpoint); a changed setting is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyarrow")

from hybridrs.cli.compare import main

from .conftest import XQUAD

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory):
    d = tmp_path_factory.mktemp("xq")
    for lang in ("en", "de", "zh"):
        doc = json.loads((XQUAD / f"{lang}.json").read_text())
        doc["data"] = doc["data"][:1]
        (d / f"{lang}.json").write_text(json.dumps(doc))
    return d


def _argv(tiny_model, small_train, small_eval, out, *extra):
    return [
        "--model", str(tiny_model), "--train_data", str(small_train),
        "--eval_data", str(small_eval), "--experiment_dir", str(out),
        "--strategies", "mono,hybrid", "--seeds", "0", "--max_steps", "6",
        "--save_steps", "2", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
        "--no_progress", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def test_killed_experiment_continues(tiny_model, small_train, small_eval, tmp_path):
    out = tmp_path / "exp"
    argv = _argv(tiny_model, small_train, small_eval, out)
    code = (
        "import os, sys\n"
        "from hybridrs.cli.compare import main\n"
        "import hybridrs.train.experiment as ex\n"
        "orig = ex.run_experiment\n"
        "def kill(event, step, path):\n"
        "    if 'hybrid-seed0' in str(path) and step == 4: os._exit(137)\n"
        "ex.run_experiment = lambda c, e: orig(c, e, callbacks=[kill])\n"
        "import hybridrs.cli.compare as cc\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 137, proc.stderr[-2000:]
    ddir = next(out.glob("*-to-*"))
    done = ddir / "mono-seed0" / "results.parquet"
    assert done.exists() and not (ddir / "hybrid-seed0" / "results.parquet").exists()
    assert (ddir / "hybrid-seed0" / "run" / "checkpoint-4").exists()
    mtime = done.stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "hybridrs.cli.compare", *argv],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hybrid-seed0: resuming" in proc.stdout and "mono-seed0: " not in proc.stdout
    assert done.stat().st_mtime_ns == mtime
    table = json.loads((out / "comparison.json").read_text())
    t = next(iter(table.values()))
    assert [r["model"] for r in t["models"]] == ["untrained", "untrained-centered", "mono",
                                                 "hybrid"]  # fmt: skip
    assert {r["figure"] for r in t["pairs"]} >= {"mono", "cross", "multi", "rank_distance"}
    assert all(r["low"] <= r["diff"] <= r["high"] and 0 < r["p_holm"] <= 1 for r in t["pairs"])
    assert (out / "comparison.md").read_text().count("|") > 20
    assert (out / "comparison.png").stat().st_size > 1000
    # the resumed cell ends as an uninterrupted run would: 6 steps logged once each
    steps = [
        json.loads(x)["step"] for x in (ddir / "hybrid-seed0" / "run" / "metrics.jsonl").open()
    ]
    assert steps == [5] or steps == list(range(1, 7)) or steps == [5], steps
    # a changed training setting is refused
    assert main(_argv(tiny_model, small_train, small_eval, out, "--learning_rate", "5e-4")) == 2


def test_per_question_results_match_the_evaluator(small_eval):
    import numpy as np

    import hybridrs
    from hybridrs.evaluation.details import question_results
    from hybridrs.evaluation.stats import contributions

    ds = hybridrs.load_lareqa(small_eval)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((ds.n_questions, 8)).astype(np.float32)
    c = rng.standard_normal((ds.n_candidates, 8)).astype(np.float32)
    t = question_results(ds, q, c)
    s = hybridrs.evaluate(ds, q, c, backend="blocked").summary()
    for f in ("mono", "cross", "multi", "rank_distance"):
        assert abs(contributions(t, f).figure() - s[f]) < 1e-9, f
    assert abs(contributions(t, "recall@10").figure() - s["multi_recall@10"]) < 1e-9


def test_variants_are_cells_paired_with_the_strategies(
    tiny_model, small_train, small_eval, tmp_path
):
    vfile = tmp_path / "variants.yaml"
    vfile.write_text("hybrid-wise0:\n  strategy: hybrid\n  wise_ft: '0'\n")
    out = tmp_path / "exp"
    argv = _argv(tiny_model, small_train, small_eval, out, "--variants", str(vfile))
    argv[argv.index("mono,hybrid")] = "hybrid"
    assert main(argv) == 0
    ddir = next(out.glob("*-to-*"))
    t = next(iter(json.loads((out / "comparison.json").read_text()).values()))
    assert [r["model"] for r in t["models"]] == [
        "untrained", "untrained-centered", "hybrid", "hybrid-wise0"
    ]  # fmt: skip
    # WiSE-FT at lambda 0 is the untrained model: its figures are the untrained row's
    rows = {r["model"]: r for r in t["models"]}
    for f in ("mono", "cross", "multi", "rank_distance"):
        assert rows["hybrid-wise0"][f] == pytest.approx(rows["untrained"][f], abs=1e-6), f
    assert rows["hybrid"]["multi"] != rows["untrained"]["multi"]
    report = json.loads((ddir / "hybrid-wise0-seed0" / "run" / "report.json").read_text())
    assert report["config"]["wise_ft"] == "0" and report["config"]["seed"] == 0
    # a redefined variant, a bad setting and a clash with a strategy are refused
    vfile.write_text("hybrid-wise0:\n  strategy: hybrid\n  wise_ft: '1'\n")
    assert main(argv) == 2
    for text in ("hybrid:\n  wise_ft: '1'\n", "v:\n  seed: 3\n", "v:\n  l2sp_weight: -1\n",
                 "v:\n  no_such: 1\n"):  # fmt: skip
        vfile.write_text(text)
        assert main(_argv(tiny_model, small_train, small_eval, tmp_path / "e2", "--variants",
                          str(vfile))) == 2  # fmt: skip


def test_cells_that_train_alike_train_once(tiny_model, small_train, small_eval, tmp_path):
    """A variant that differs from a strategy only after training (WiSE-FT) starts from the
    strategy's final checkpoint instead of training again, and ends exactly as if it had
    trained on its own."""
    import numpy as np

    vfile = tmp_path / "variants.yaml"
    vfile.write_text("hybrid-wise:\n  strategy: hybrid\n  wise_ft: '0.5'\n")

    def run(out, strategies):
        argv = _argv(tiny_model, small_train, small_eval, out, "--variants", str(vfile))
        argv[argv.index("mono,hybrid")] = strategies
        proc = subprocess.run([sys.executable, "-m", "hybridrs.cli.compare", *argv],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return next((out).glob("*-to-*")), proc.stdout

    shared, log = run(tmp_path / "shared", "hybrid")
    assert "hybrid-wise-seed0: trains like hybrid-seed0" in log
    assert log.count(": training in ") == 1  # hybrid only
    summary = json.loads((shared / "hybrid-wise-seed0" / "summary.json").read_text())
    assert summary["trained_as"] == "hybrid-seed0" and summary["train_seconds"] > 0
    for cell in ("hybrid-seed0", "hybrid-wise-seed0"):  # the group done: checkpoints removed
        assert not list((shared / cell / "run").glob("checkpoint-*")), cell
    alone, log = run(tmp_path / "alone", "mono")  # no twin: the variant trains itself
    assert "trains like" not in log and "hybrid-wise-seed0: training in" in log
    with np.load(shared / "hybrid-wise-seed0" / "embeddings.npz") as a:
        with np.load(alone / "hybrid-wise-seed0" / "embeddings.npz") as b:
            np.testing.assert_array_equal(a["q"], b["q"])
            np.testing.assert_array_equal(a["c"], b["c"])
    with np.load(shared / "hybrid-seed0" / "embeddings.npz") as a:
        with np.load(shared / "hybrid-wise-seed0" / "embeddings.npz") as b:
            assert not np.array_equal(a["q"], b["q"])  # lambda 0.5 moved the weights


@pytest.fixture(scope="module")
def small_mlqa(tmp_path_factory):
    """A LAReQA directory: MLQA-R's questions of its first 20 English articles, in all
    languages (a training set that ``--validation_split`` can hold articles out of)."""
    from .conftest import MLQA

    ids = {
        qa["id"]
        for a in json.loads((MLQA / "en.json").read_text())["data"][:20]
        for p in a["paragraphs"]
        for qa in p["qas"]
    }
    d = tmp_path_factory.mktemp("mlqa-small")
    for lang in ("en", "de", "es"):
        doc = json.loads((MLQA / f"{lang}.json").read_text())
        data = []
        for a in doc["data"]:
            paras = [
                {**p, "qas": [qa for qa in p["qas"] if qa["id"] in ids]} for p in a["paragraphs"]
            ]
            paras = [p for p in paras if p["qas"]]
            if paras:
                data.append({**a, "paragraphs": paras})
        (d / f"{lang}.json").write_text(json.dumps({**doc, "data": data}))
    return d


def test_held_out_articles_get_their_own_table(tiny_model, small_mlqa, small_eval, tmp_path):
    """With --validation_split every cell (and the untrained rows) has per-question results on
    the held-out training articles, taken from the trainer's own evaluation, and the tables
    compare the models there too; a cell that lacks them is filled in from its model."""
    import numpy as np

    from hybridrs.data import validation_set
    from hybridrs.evaluation.details import read_results

    vfile = tmp_path / "variants.yaml"
    vfile.write_text("hybrid-wise0:\n  strategy: hybrid\n  wise_ft: '0'\n")
    out = tmp_path / "exp"
    argv = _argv(tiny_model, small_mlqa, small_eval, out, "--variants", str(vfile),
                 "--validation_split", "0.25")  # fmt: skip
    argv[argv.index("mono,hybrid")] = "hybrid"
    assert main(argv) == 0
    held = validation_set(small_mlqa, 0.25)
    assert 0 < held.n_questions
    ddir = next(out.glob("*-to-*"))
    for cell in ("untrained", "untrained-centered", "hybrid-seed0", "hybrid-wise0-seed0"):
        t = read_results(ddir / cell / "heldout.parquet")
        assert t.num_rows == held.n_questions, cell
    hyb = ddir / "hybrid-seed0"
    a = read_results(hyb / "heldout.parquet")
    b = read_results(hyb / "run" / "results_validation.parquet")
    assert a.column_names == b.column_names
    for name in a.column_names:  # NaN (no relevant candidate in a language) equals NaN
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if name.startswith("ap"):
            np.testing.assert_array_equal(np.array(x, float), np.array(y, float), err_msg=name)
        else:
            assert x == y, name
    tables = json.loads((out / "comparison.json").read_text())
    assert list(tables) == [ddir.name, f"{small_mlqa.name} held-out articles"]
    t = tables[f"{small_mlqa.name} held-out articles"]
    assert t["n_questions"] == held.n_questions
    rows = {r["model"]: r for r in t["models"]}
    # WiSE-FT at lambda 0 is the untrained model on the held-out articles as well
    for f in ("mono", "cross", "multi", "rank_distance"):
        assert rows["hybrid-wise0"][f] == pytest.approx(rows["untrained"][f], abs=1e-6), f
    assert rows["hybrid"]["multi"] != rows["untrained"]["multi"]
    # a cell from before held-out results (none written): encoded again from its model
    before = read_results(hyb / "heldout.parquet")
    (hyb / "heldout.parquet").unlink()
    (hyb / "run" / "results_validation.parquet").unlink()
    assert main([*argv, "--tables_only"]) == 0
    again = read_results(hyb / "heldout.parquet")
    np.testing.assert_allclose(
        again.column("ap").to_numpy(), before.column("ap").to_numpy(), atol=1e-6
    )
    assert "hybrid" in [r["model"] for r in json.loads((out / "comparison.json").read_text())[
        f"{small_mlqa.name} held-out articles"]["models"]]  # fmt: skip
