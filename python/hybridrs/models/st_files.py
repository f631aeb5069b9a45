"""sentence-transformers' module files, written once for every model directory hybridrs
makes (the converted default encoder and every trained model)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["POOLING_MODES", "read_json", "write_sentence_transformers_files"]

#: The pooling modes hybridrs trains and evaluates with, and their sentence-transformers keys.
POOLING_MODES = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
}


def read_json(path: Path) -> dict:  # type: ignore[type-arg]
    """A JSON object from ``path``, or ``{}`` when missing or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_sentence_transformers_files(
    path: Path,
    dim: int,
    query_prefix: str,
    passage_prefix: str,
    pooling: str = "mean",
    normalize: bool = True,
    max_seq_length: int = 512,
) -> None:
    """Transformer -> Pooling (``pooling``) [-> Normalize], with the query / passage prompts,
    so the directory loads with ``SentenceTransformer(path)`` and embeds as hybridrs did."""
    if pooling not in POOLING_MODES:
        raise ValueError(f"pooling: must be one of {sorted(POOLING_MODES)}, got {pooling!r}")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    (path / "modules.json").write_text(json.dumps(modules, indent=2))
    (path / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (path / "1_Pooling").mkdir(exist_ok=True)
    config: dict[str, object] = {"word_embedding_dimension": dim}
    for mode, key in POOLING_MODES.items():
        config[key] = mode == pooling
    config["pooling_mode_mean_sqrt_len_tokens"] = False
    (path / "1_Pooling" / "config.json").write_text(json.dumps(config, indent=2))
    if normalize:
        (path / "2_Normalize").mkdir(exist_ok=True)
    (path / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": query_prefix, "passage": passage_prefix},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
