"""Training settings: HfArgumentParser, every flag documented, typed values from YAML/JSON
files with clear errors naming the setting and the file, command-line overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from hybridrs.cli.train import main
from hybridrs.train import TrainConfig, load_config
from hybridrs.train.settings import build_parser


def test_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    parser = build_parser()
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name}" in text, f.name
        assert f.metadata.get("help"), f"{f.name} has no help text"
    # argparse prints each option's help beside it: no option without one
    documented = {a.dest for a in parser._actions if a.help}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= documented


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_yaml_values_are_typed(tmp_path):
    # PyYAML reads 3e-5 as a string: it is a float setting, so it is parsed as one
    p = _write(tmp_path, "a.yaml", "learning_rate: 3e-5\nmax_steps: 7\nalpha: 0.25\n")
    c, _ = load_config(["--config", str(p)])
    assert c.learning_rate == 3e-5 and isinstance(c.learning_rate, float)
    assert c.max_steps == 7 and c.alpha == 0.25
    # the command line overrides the file
    c, _ = load_config(["--config", str(p), "--max_steps", "9"])
    assert c.max_steps == 9 and c.learning_rate == 3e-5


@pytest.mark.parametrize(
    "value, expected", [('"false"', False), ('"true"', True), ("false", False)]
)
def test_bool_strings_are_bools(tmp_path, value, expected):
    p = _write(tmp_path, "a.json", f'{{"overwrite_output_dir": {value}}}')
    c, _ = load_config(["--config", str(p)])
    assert c.overwrite_output_dir is expected


@pytest.mark.parametrize(
    "text, match",
    [
        ("strategy: [hybrid]\n", r"setting 'strategy' expects a string, got \['hybrid'\]"),
        ("max_steps: 10.5\n", r"setting 'max_steps' expects an integer, got 10.5"),
        ("learning_rate: fast\n", r"setting 'learning_rate' expects a number"),
        ("overwrite_output_dir: maybe\n", r"setting 'overwrite_output_dir' expects true or false"),
        ("eval_data: 3\n", r"setting 'eval_data' expects a list of strings"),
        ("bogus: 1\n", r"unknown setting\(s\) \['bogus'\]"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("a: [\n", "cannot parse"),
        ("learning_rate: -1\n", "learning_rate: must be > 0"),
        ("temperature: .inf\n", "temperature: must be a finite number"),
    ],
)
def test_bad_file_values_name_the_setting_and_file(tmp_path, text, match):
    p = _write(tmp_path, "run.yaml", text)
    with pytest.raises(ValueError, match=match) as e:
        load_config(["--config", str(p)])
    if "setting '" in match:
        assert "run.yaml" in str(e.value)


def test_command_line_errors_exit_2(tmp_path, capsys):
    cases = [
        (["--max_steps", "10.5"], "invalid int value"),
        (["--learning_rate", "-1"], "learning_rate: must be > 0"),
        (["--strategy", "both"], "strategy: must be"),
        (["--alpha", "2"], "alpha: must lie"),
        (["--strategy", "mono", "--alpha", "0.5"], "contradicts"),
        (["--num_train_epochs", "inf"], "num_train_epochs: must be a finite number"),
        (["--config", str(tmp_path)], "is not a file"),
        (["--config", str(tmp_path / "missing.yaml")], "does not exist"),
    ]
    for argv, msg in cases:
        with pytest.raises(SystemExit) if "invalid" in msg else _NoRaise():
            assert main([*argv, "--output_dir", str(tmp_path / "o")]) == 2, argv
        assert msg in capsys.readouterr().err, argv


class _NoRaise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_json_config_round_trip(tmp_path):
    c = TrainConfig(max_steps=5, eval_data=[], train_languages=["en", "de"])
    p = _write(tmp_path, "c.json", json.dumps(c.to_dict()))
    back, _ = load_config(["--config", str(p)])
    assert back == c


def test_optional_settings_coerce_from_files():
    """``X | None`` settings (alpha) take numbers, numeric strings and null from YAML/JSON
    files (a variants file with ``alpha: 0.0`` once failed on the annotation's form)."""
    from hybridrs.train.settings import coerce_setting

    assert coerce_setting("alpha", 0.0, "v") == 0.0
    assert coerce_setting("alpha", 1, "v") == 1.0
    assert coerce_setting("alpha", "0.25", "v") == 0.25
    assert coerce_setting("alpha", None, "v") is None
    with pytest.raises(ValueError, match="setting 'alpha' expects a number"):
        coerce_setting("alpha", "half", "v")


def test_the_techniques_file_is_a_valid_grid():
    """Every variant of experiments/techniques.yaml (what `make compare-techniques` runs) is
    read, typed and validated as the experiment will: a bad entry fails here, not hours into
    the grid."""
    from pathlib import Path

    from hybridrs.train.experiment import ExperimentConfig

    path = Path(__file__).resolve().parents[1] / "experiments" / "techniques.yaml"
    variants = ExperimentConfig(variants=str(path)).variant_settings()
    assert len(variants) >= 7 and all(v["strategy"] == "hybrid" for v in variants.values())
    base = TrainConfig(validation_split=0.2)
    for name, over in variants.items():
        try:
            dataclasses.replace(base, **over).validate()
        except (ValueError, TypeError) as e:
            pytest.fail(f"{name}: {e}")
    with pytest.raises(ValueError, match="validation_split"):  # the check can fail
        dataclasses.replace(TrainConfig(), **variants["hybrid-wise"]).validate()


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EXPERIMENTS.glob("*.yaml") if p.name != "techniques.yaml")
)
def test_other_technique_files_match_the_forward_grid(name: str):
    """Every other variant file of experiments/ (the reverse direction's grid) holds valid
    variants, each defined exactly as in experiments/techniques.yaml, so every table compares
    the same settings."""
    from hybridrs.train.experiment import ExperimentConfig

    forward = ExperimentConfig(variants=str(EXPERIMENTS / "techniques.yaml")).variant_settings()
    other = ExperimentConfig(variants=str(EXPERIMENTS / name)).variant_settings()
    assert other, f"{name} has no variants"
    for v, over in other.items():
        assert forward.get(v) == over, f"{v}: {over} in {name}, {forward.get(v)} forward"
        dataclasses.replace(TrainConfig(validation_split=0.2), **over).validate()
