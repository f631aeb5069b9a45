"""hybridrs-train with a tiny randomly initialised BERT and the real XLM-R tokenizer: the loss
decreases, kill-and-resume equals an uninterrupted run, torchrun with 2 CPU processes matches
one process with the global batch, bad settings get clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hybridrs.cli.train import main  # noqa: E402
from hybridrs.train import TrainConfig, load_config, train  # noqa: E402

from .conftest import MLQA, XQUAD  # noqa: E402

pytestmark = pytest.mark.model


def cfg(tiny_model, small_train, out, **kw) -> TrainConfig:
    base = {
        "model": str(tiny_model),
        "train_data": str(small_train),
        "eval_data": [str(XQUAD)],
        "output_dir": str(out),
        "eval_languages": ["en", "de"],
        "eval_articles": "0",
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-3,
        "max_steps": 12,
        "no_progress": True,
        "dataloader_num_workers": 0,
        "skip_eval_before": True,
        "logging_steps": 1,
    }
    base.update(kw)
    c = TrainConfig(**base)
    c.validate()
    return c


def test_loss_decreases_and_outputs(tiny_model, small_train, tmp_path):
    rep = train(
        cfg(
            tiny_model,
            small_train,
            tmp_path / "o",
            max_steps=30,
            skip_eval_before=False,
            strategy="cross",
            exact_search_below=1,
        )
    )
    losses = [json.loads(x)["loss"] for x in (tmp_path / "o" / "metrics.jsonl").open()]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    out = tmp_path / "o"
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"config", "before", "after", "train"}
    assert "xquad-r" in report["before"] and "xquad-r" in report["after"]
    r = report["after"]["xquad-r"]
    assert r["unseen_languages"]["mono"] is not None
    ret = r["retrieval"]
    assert ret["method"] == "hnsw" and 0.5 <= ret["recall@10_vs_exact"] <= 1.0
    assert ret["map@10_index"] <= ret["map@10_exact"] + 0.05
    assert (tmp_path / "o" / "model" / "hnsw-xquad-r.bin").exists()
    assert 0 <= report["train"]["sampling_share"] < 1 and report["train"]["pairs_per_s"] > 0
    assert (out / "heatmap_xquad-r_before.png").exists()
    assert "CC BY-NC" in (out / "model" / "README.md").read_text() or rep
    # the model loads with transformers and with sentence-transformers
    from transformers import AutoModel

    AutoModel.from_pretrained(str(out / "model"))
    st = pytest.importorskip("sentence_transformers")
    emb = st.SentenceTransformer(str(out / "model"), device="cpu").encode(["query: hi"])
    assert emb.shape == (1, 32)


def _final_weights(out: Path):
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


def test_kill_and_resume_equals_uninterrupted(tiny_model, small_train, tmp_path):
    c = cfg(tiny_model, small_train, tmp_path / "full", save_steps=4, max_steps=12)
    train(c)
    killed = tmp_path / "killed"
    # the kill comes from the test side: a callback that ends the process the hard way right
    # after checkpoint 8 is written
    code = (
        "import os, sys, json; from hybridrs.train import TrainConfig, train\n"
        "def kill(event, step, path):\n"
        "    if step == 8: os._exit(137)\n"
        "train(TrainConfig(**json.loads(sys.argv[1])), callbacks=[kill])"
    )
    kw = {**c.__dict__, "output_dir": str(killed)}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kw)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    (killed / ".tmp-checkpoint-12").mkdir()  # a save cut short must not be picked up
    train(
        cfg(
            tiny_model,
            small_train,
            killed,
            save_steps=4,
            max_steps=12,
            resume_from_checkpoint="last",
        )
    )
    a, b = _final_weights(tmp_path / "full"), _final_weights(killed)
    # metrics.jsonl was cut back to the checkpoint: every step once
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").open()]
    assert steps == list(range(1, 13)), steps
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_torchrun_two_processes_match_one(tiny_model, small_train, tmp_path):
    common = {"max_steps": 3, "learning_rate": 1e-3, "skip_eval_before": True, "eval_data": []}
    one = cfg(tiny_model, small_train, tmp_path / "one", per_device_train_batch_size=8, **common)
    train(one)
    loss_one = [json.loads(x)["loss"] for x in (tmp_path / "one" / "metrics.jsonl").open()]
    two = tmp_path / "two"
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "hybridrs.cli.train",
        "--model",
        str(tiny_model),
        "--train_data",
        str(small_train),
        "--output_dir",
        str(two),
        "--per_device_train_batch_size",
        "4",
        "--max_steps",
        "3",
        "--learning_rate",
        "1e-3",
        "--skip_eval_before",
        "--no_progress",
        "--dataloader_num_workers",
        "0",
        "--logging_steps",
        "1",
        "--eval_data",
    ]
    proc = subprocess.run(
        args[:-1],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loss_two = [json.loads(x)["loss"] for x in (two / "metrics.jsonl").open()]
    # rank 0 logs its own loss over the global batch's passages: the first step starts from
    # the same weights, so it matches the single process's first loss to a tolerance
    assert abs(loss_two[0] - loss_one[0]) < 0.25 * abs(loss_one[0])
    # the ranks drew disjoint halves of every global batch
    from hybridrs import HybridBatchSampler, PairPool, load_parallel_qa

    pool = PairPool.from_parallel(load_parallel_qa(small_train))
    r0 = list(HybridBatchSampler(pool, 4, seed=42, rank=0, world_size=2))
    r1 = list(HybridBatchSampler(pool, 4, seed=42, rank=1, world_size=2))
    whole = list(HybridBatchSampler(pool, 8, seed=42))
    for a, b, w in zip(r0, r1, whole, strict=False):
        assert not set(a) & set(b) and a + b == w


def test_bad_settings(tiny_model, small_train, tmp_path, capsys):
    for args, msg in [
        (["--learning_rate", "-1"], "learning_rate: must be > 0"),
        (["--strategy", "both"], "strategy: must be"),
        (["--alpha", "2"], "alpha: must lie"),
        (["--strategy", "mono", "--alpha", "0.5"], "contradicts"),
        (["--train_data", str(tmp_path / "nope.jsonl")], "does not exist"),
        (["--model", "intfloat/not-here"], "not a local directory"),
        (["--config", str(tmp_path / "missing.yaml")], "does not exist"),
        (["--eval_data", str(MLQA), "--train_data", str(MLQA)], "zero-shot"),
    ]:
        argv = [
            "--output_dir",
            str(tmp_path / "o"),
            "--overwrite_output_dir",
            "--model",
            str(tiny_model),
            *args,
        ]
        assert main(argv) == 2, args
        assert msg in capsys.readouterr().err, msg
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert (
        main(
            [
                "--output_dir",
                str(tmp_path / "busy"),
                "--model",
                str(tiny_model),
                "--train_data",
                str(small_train),
            ]
        )
        == 2
    )
    assert "not empty" in capsys.readouterr().err
    conf = tmp_path / "c.yaml"
    conf.write_text("learning_rate: 0.001\nbogus: 1\n")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['bogus'\]"):
        load_config(["--config", str(conf)])
    conf.write_text("learning_rate: 0.001\nmax_steps: 7\n")
    c, _ = load_config(["--config", str(conf), "--max_steps", "9"])
    assert c.learning_rate == 0.001 and c.max_steps == 9


def test_validation_split_holds_out_whole_articles(tiny_model, tmp_path):
    rep = train(
        cfg(
            tiny_model,
            MLQA,
            tmp_path / "v",
            validation_split=0.2,
            max_steps=2,
            eval_data=[],
            skip_eval_before=True,
        )
    )
    v = rep["after"]["validation"]
    assert 0 < v["n_questions"] < 4199 and v["summary"]["n_mono"] == 7
    from hybridrs import load_lareqa, load_parallel_qa
    from hybridrs.data import split_validation

    qa = load_parallel_qa(MLQA)
    train_qa, val = split_validation(qa, MLQA, 0.2)
    held = {q.id for q in val.questions}
    assert held and not held & set(train_qa.ids)
    assert len(train_qa) + val.n_questions == len(qa)
    # whole articles: every English question of a held-out article is held out
    rs = load_lareqa(MLQA)
    arts = {q.article for q in rs.questions if q.lang == "en" and q.id in held}
    assert all(q.id in held for q in rs.questions if q.lang == "en" and q.article in arts)


def test_compare_writes_table_and_chart(tiny_model, tmp_path):
    from hybridrs.cli.train import main as train_main

    out = tmp_path / "cmp"
    argv = [
        "--compare",
        "mono,hybrid",
        "--model",
        str(tiny_model),
        "--train_data",
        str(MLQA),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--eval_articles",
        "0",
        "--eval_max_questions_per_language",
        "20",
        "--no_progress",
        "--dataloader_num_workers",
        "0",
    ]
    assert train_main(argv) == 0
    table = (out / "comparison.md").read_text()
    for row in (
        "mlqa-r->xquad-r | TF-IDF",
        "mlqa-r->xquad-r | untrained",
        "mlqa-r->xquad-r | mono",
        "xquad-r->mlqa-r | hybrid",
    ):
        assert row in table, row
    assert (out / "comparison.png").stat().st_size > 1000
    assert train_main(["--compare", "mono,bogus", "--output_dir", str(out)]) == 2


@pytest.fixture(scope="session")
def tiny_cls_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model declaring CLS pooling (sentence-transformers files), no prompts."""
    import shutil

    from hybridrs.models import write_sentence_transformers_files

    out = tmp_path_factory.mktemp("tiny-cls")
    shutil.copytree(tiny_model, out, dirs_exist_ok=True)
    write_sentence_transformers_files(out, 32, "", "", pooling="cls")
    return out


def test_trained_model_pools_as_its_base(tiny_cls_model, small_train, tmp_path, capfd):
    """A CLS-pooling base is trained with CLS pooling, and the saved model, loaded by
    sentence-transformers, gives exactly the embeddings the trainer used."""
    from hybridrs.train import Trainer

    out = tmp_path / "cls"
    t = Trainer(cfg(tiny_cls_model, small_train, out, max_steps=3, eval_data=[]))
    assert t.encoder.pooling == "cls"
    report = t.train()
    assert report["train"]["pooling"] == "cls"
    texts = ["Wie viel Eiweiß sollte eine Frau pro Tag essen?", "Paris is the capital."]
    ours = t.encoder.encode(texts, "query: ", progress=False)
    st = pytest.importorskip("sentence_transformers")
    capfd.readouterr()
    model = st.SentenceTransformer(str(out / "model"), device="cpu")
    theirs = model.encode([f"query: {x}" for x in texts], convert_to_numpy=True)
    import numpy as np

    assert np.allclose(ours, theirs, atol=1e-5), np.abs(ours - theirs).max()
    # mean pooling would give other vectors: the test can tell the two apart
    from hybridrs.models import Encoder

    mean = Encoder.load(out / "model", pooling="mean", device="cpu")
    assert not np.allclose(mean.encode(texts, "query: ", progress=False), theirs, atol=1e-3)
    # loading the saved model is silent (no report of missing pooler weights)
    from transformers import AutoModel

    capfd.readouterr()
    AutoModel.from_pretrained(str(out / "model"))
    captured = capfd.readouterr()
    assert "MISSING" not in captured.err + captured.out, captured.err[-2000:]
    # and so is hybridrs's own loader (the saved pooler is kept, not reported unexpected)
    Encoder.load(out / "model", device="cpu")
    captured = capfd.readouterr()
    assert "UNEXPECTED" not in captured.err + captured.out, captured.err[-2000:]


def test_model_card_front_matter(tiny_model, small_train, tmp_path):
    import yaml

    out = tmp_path / "card"
    train(cfg(tiny_model, small_train, out, max_steps=2))
    text = (out / "model" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["pipeline_tag"] == "sentence-similarity"
    assert "sentence-transformers" in meta["tags"]
    assert set(meta["language"]) >= {"en", "de", "zh"} and meta["base_model"]
    assert meta["datasets"] == ["mlqa.jsonl"]
    res = meta["model-index"][0]["results"][0]
    assert res["dataset"]["name"] == "xquad-r"
    assert {m["type"] for m in res["metrics"]} >= {"map_mono", "map_cross", "map_multi"}


# -- the fault probe's training cases --------------------------------------------------------
def test_overwrite_validates_first_and_removes_only_own_files(tiny_model, small_train, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    data = out / "train.jsonl"
    data.write_text(small_train.read_text())
    (out / "notes.txt").write_text("mine")
    # a bad model: nothing in the directory is touched
    with pytest.raises(ValueError, match="model"):
        train(cfg(tmp_path / "no-model", data, out, overwrite_output_dir=True))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train.jsonl"]
    # a good run with the training data inside the output directory: the data stays
    train(cfg(tiny_model, data, out, overwrite_output_dir=True, max_steps=2))
    names = {p.name for p in out.iterdir()}
    assert {"notes.txt", "train.jsonl", "model", "report.json", "metrics.jsonl"} <= names
    assert any(n.startswith("results_") and n.endswith(".parquet") for n in names), names
    (out / "checkpoint-99").mkdir()
    for stale in ("results_gone.parquet", "wise_ft.json", "wise_ft.png"):  # an older run's
        (out / stale).write_text("old")
    train(cfg(tiny_model, data, out, overwrite_output_dir=True, max_steps=2))
    names = {p.name for p in out.iterdir()}
    assert "checkpoint-99" not in names and {"notes.txt", "train.jsonl"} <= names
    assert not names & {"results_gone.parquet", "wise_ft.json", "wise_ft.png"}, names


def test_second_run_into_a_locked_directory_is_refused(tiny_model, small_train, tmp_path):
    from hybridrs.train import Trainer

    out = tmp_path / "o"
    first = Trainer(cfg(tiny_model, small_train, out, max_steps=2))
    try:
        for kw in ({"overwrite_output_dir": True}, {"resume_from_checkpoint": "last"}, {}):
            with pytest.raises(ValueError, match="another hybridrs-train run is writing"):
                Trainer(cfg(tiny_model, small_train, out, max_steps=2, **kw))
    finally:
        first.release()
    Trainer(cfg(tiny_model, small_train, out, max_steps=2, overwrite_output_dir=True)).release()


def test_disk_full_names_the_path_and_keeps_the_last_good_state(
    tiny_model, small_train, tmp_path, monkeypatch
):
    import errno

    from hybridrs.models import Encoder
    from hybridrs.train.outputs import DiskFullError

    out = tmp_path / "o"
    train(cfg(tiny_model, small_train, out, max_steps=2))
    good = (out / "model" / "model.safetensors").read_bytes()
    report = (out / "report.json").read_text()

    def full(self, path):
        (Path(path) / "tokenizer.json").write_text("{trunc")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Encoder, "save", full)
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*model"):
        train(cfg(tiny_model, small_train, out, max_steps=2, overwrite_output_dir=True))
    # the final model is written like a checkpoint: the failed save left nothing half-written
    assert not (out / ".tmp-model").exists()
    monkeypatch.undo()
    # a checkpoint that torch cannot finish for want of space
    import hybridrs.train.outputs as outputs

    def short_write(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 6912")

    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda p: type("U", (), {"free": 1024})())
    out2 = tmp_path / "o2"
    with pytest.raises(
        DiskFullError, match=r"no space left on device while writing .*checkpoint-1"
    ):
        train(cfg(tiny_model, small_train, out2, max_steps=2, save_steps=1))
    assert not list(out2.glob("checkpoint-*"))
    del good, report


def test_resume_with_changed_settings(tiny_model, small_train, tmp_path):
    out = tmp_path / "o"
    code = (
        "import os, sys, json; from hybridrs.train import TrainConfig, train\n"
        "def kill(event, step, path):\n"
        "    if step == 4: os._exit(137)\n"
        "train(TrainConfig(**json.loads(sys.argv[1])), callbacks=[kill])"
    )
    c = cfg(tiny_model, small_train, out, save_steps=2, max_steps=8, eval_data=[])
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(c.__dict__)], capture_output=True, timeout=300
    )
    assert proc.returncode == 137
    base = {"save_steps": 2, "max_steps": 8, "eval_data": [], "resume_from_checkpoint": "last"}
    with pytest.raises(
        ValueError,
        match=r"per_device_train_batch_size: 8 then, 4 now; "
        r"learning_rate: 0.001 then, 0.0005 now",
    ):
        train(
            cfg(
                tiny_model,
                small_train,
                out,
                **base,
                per_device_train_batch_size=4,
                learning_rate=5e-4,
            )
        )
    rep = train(
        cfg(tiny_model, small_train, out, **base, learning_rate=5e-4, allow_changed_settings=True)
    )
    assert rep["changed_on_resume"] == {"learning_rate": {"before": 0.001, "after": 0.0005}}
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").open()]
    assert steps == list(range(1, 9)), steps


def test_train_cli_errors(tiny_model, small_train, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": 1, "lang": "en", "question": "\xff", "passage": "x"}\n')
    for argv, msg in [
        (["--device", "cuda:0"], "no CUDA GPU is available"),
        (["--device", "warp"], "is not a torch device"),
        (["--train_data", str(bad)], "line 1: not UTF-8 text"),
        (["--max_grad_norm", "nan"], "max_grad_norm: must be a finite number"),
        (["--temperature", "inf"], "temperature: must be a finite number"),
    ]:
        if torch.cuda.is_available() and "cuda" in argv[1]:
            continue
        args = ["--model", str(tiny_model), "--train_data", str(small_train), *argv]
        assert main([*args, "--output_dir", str(tmp_path / "o"), "--eval_data"]) == 2, argv
        assert msg in capsys.readouterr().err, argv
