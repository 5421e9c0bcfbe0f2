"""The run's report.md, assembled from what the run wrote (metrics.json, reports/*.json, figures/).

Every number in the report is read from the run folder; nothing is computed or typed in here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .io import atomic_write_text, read_json


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    params = yaml.safe_load((run_dir / "params.yaml").read_text()) if (run_dir / "params.yaml").is_file() else {}
    sections = [_header(run_dir, params, metrics)]
    if "test" in metrics:
        sections.append(_split_section("Test", metrics["test"]))
    if "validation" in metrics:
        sections.append(_split_section("Validation", metrics["validation"], report=False))
    if "train" in metrics:
        sections.append(_training_section(metrics["train"]))
    sections.append(_data_section(run_dir))
    for name, study in metrics.get("studies", {}).items():
        sections.append(_study_section(name, study))
    sections.append(_figures_section(run_dir))
    return atomic_write_text(run_dir / "report.md", "\n\n".join(s for s in sections if s).rstrip() + "\n")


def _header(run_dir: Path, params: dict[str, Any], metrics: dict[str, Any]) -> str:
    lines = [f"# Run `{run_dir.name}`", ""]
    if params:
        sources = ", ".join(s if isinstance(s, str) else (s.get("name") or s.get("path")) for s in params["sources"])
        lines += [
            f"- model: `{params.get('model_name_or_path')}`, max_seq_length {params.get('max_seq_length')}, "
            f"lr {params.get('learning_rate')}, epochs {params.get('num_train_epochs')}, seed {params.get('seed')}",
            f"- sources: {sources}; target domain: {params.get('target_domain') or '—'}; "
            f"mixing: {params.get('mixing_strategy')}",
        ]
    test = metrics.get("test")
    if test:
        lines.append(f"- **test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}** on "
                     f"{test['n']} examples; worst domain `{test['worst_domain']}` "
                     f"(gap best−worst {test['domain_gap']:.4f})")
    lines.append("- resolved parameters: [params.yaml](params.yaml); executed notebooks: [notebooks/](notebooks/)")
    return "\n".join(lines)


def _split_section(title: str, scores: dict[str, Any], report: bool = True) -> str:
    lines = [f"## {title}", "", f"accuracy {scores['accuracy']:.4f} · macro-F1 {scores['macro_f1']:.4f} · "
             f"weighted-F1 {scores['weighted_f1']:.4f} · n = {scores['n']}"]
    if report and scores.get("classification_report"):
        lines += ["", "```", scores["classification_report"].rstrip(), "```"]
    per_domain = scores.get("per_domain") or {}
    if per_domain:
        lines += ["", "| domain | n | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
        for domain, row in sorted(per_domain.items(), key=lambda item: item[1]["accuracy"]):
            marker = " (worst)" if domain == scores.get("worst_domain") else ""
            lines.append(f"| {domain}{marker} | {row['n']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} |")
    return "\n".join(lines)


def _training_section(train: dict[str, Any]) -> str:
    facts = []
    for key, label, fmt in (
        ("global_step", "optimizer steps", "{:d}"),
        ("epochs_completed", "epochs", "{}"),
        ("best_step", "best step", "{}"),
        ("best_metric", "best validation metric", "{:.4f}"),
        ("stopped_early", "stopped early", "{}"),
        ("train_runtime_s", "training time (s)", "{:.1f}"),
        ("train_examples_per_second", "training examples/s (this machine)", "{:.1f}"),
    ):
        if train.get(key) is not None:
            facts.append(f"- {label}: {fmt.format(train[key])}")
    return "## Training\n\n" + "\n".join(facts)


def _data_section(run_dir: Path) -> str:
    lines = []
    cleaning = run_dir / "reports" / "cleaning.json"
    if cleaning.is_file():
        summary = read_json(cleaning).get("summary")
        if summary:
            lines.append(f"- cleaning: {summary}")
    mix = run_dir / "reports" / "mix.json"
    if mix.is_file():
        summary = read_json(mix).get("summary")
        if summary:
            lines.append(f"- mixing: {summary}")
    return "## Data\n\n" + "\n".join(lines) if lines else ""


def _study_section(name: str, study: dict[str, Any]) -> str:
    lines = [f"## Study: {name}"]
    if study.get("table_markdown"):
        lines += ["", study["table_markdown"]]
    if study.get("reading"):
        lines += ["", study["reading"]]
    return "\n".join(lines)


def _figures_section(run_dir: Path) -> str:
    figures = sorted((run_dir / "figures").glob("*.png"))
    if not figures:
        return ""
    return "## Figures\n\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in figures)
