"""The run's report.md, assembled from what the run wrote (metrics.json, reports/*.json, figures/).

Every number in the report is read from the run folder; nothing is computed or typed in here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .clock import clock_line
from .io import atomic_write_text, read_json
from .model_card import read_inference_settings
from .runs import RunFolder


def write_report(run_dir: Path) -> Path:
    paths = RunFolder(Path(run_dir))
    metrics = read_json(paths.metrics) if paths.metrics.is_file() else {}
    params = yaml.safe_load(paths.params.read_text()) if paths.params.is_file() else {}
    sections = [_header(paths, params, metrics)]
    if "test" in metrics:
        sections += [_split_section("Test", metrics["test"]), _evaluation_views(paths, "test", metrics["test"])]
    if "validation" in metrics:
        sections += [_split_section("Validation", metrics["validation"], report=False),
                     _evaluation_views(paths, "validation", metrics["validation"])]
    if "pretraining" in metrics:
        sections.append(_pretraining_section(metrics["pretraining"]))
    if "intermediate" in metrics:
        sections.append(_intermediate_section(metrics["intermediate"]))
    if "train" in metrics:
        sections.append(_training_section(metrics["train"], paths))
    sections.append(_data_section(paths))
    if "monitoring" in metrics:
        sections.append(_monitoring_section(metrics["monitoring"]))
    for name, study in metrics.get("studies", {}).items():
        sections.append(_study_section(name, study))
    sections.append(_figures_section(paths, shown="\n".join(sections)))
    return atomic_write_text(paths.report, "\n\n".join(s for s in sections if s).rstrip() + "\n")


def _relative(paths: RunFolder, path: Path) -> str:
    """An artefact's path as report.md links it: relative, so the run folder can move."""
    return path.relative_to(paths.report.parent).as_posix()


def _header(paths: RunFolder, params: dict[str, Any], metrics: dict[str, Any]) -> str:
    lines = [f"# Run `{paths.root.name}`", ""]
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
    clock = clock_line(paths.root)
    if clock:
        lines.append(f"- wall time: {clock}")
    params_link, notebooks_link = _relative(paths, paths.params), _relative(paths, paths.notebooks)
    lines.append(f"- resolved parameters: [{params_link}]({params_link}); executed notebooks: "
                 f"[{notebooks_link}/]({notebooks_link}/)")
    return "\n".join(lines)


def _split_section(title: str, scores: dict[str, Any], report: bool = True) -> str:
    lines = [f"## {title}", "", f"accuracy {scores['accuracy']:.4f} · macro-F1 {scores['macro_f1']:.4f} · "
             f"weighted-F1 {scores['weighted_f1']:.4f} · n = {scores['n']}"]
    routed = scores.get("routing")
    if routed:
        lines += ["", routing_line(routed)]
    if report and scores.get("classification_report"):
        lines += ["", "```", scores["classification_report"].rstrip(), "```"]
    per_domain = scores.get("per_domain") or {}
    if per_domain:
        lines += ["", "| domain | n | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
        for domain, row in sorted(per_domain.items(), key=lambda item: item[1]["accuracy"]):
            marker = " (worst)" if domain == scores.get("worst_domain") else ""
            lines.append(f"| {domain}{marker} | {row['n']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} |")
    return "\n".join(lines)


def routing_line(routed: dict[str, Any]) -> str:
    """A routed split's line: in-scope accuracy, out-of-scope recall and their mean, the balanced score the
    threshold was chosen to maximise on validation, then precision and the handover share."""
    balanced = (routed["in_scope_accuracy"] + routed["out_of_scope_recall"]) / 2
    return (f"routing: **in-scope accuracy {routed['in_scope_accuracy']:.4f}** ({routed['in_scope_rows']} in-scope "
            f"rows), **out-of-scope recall {routed['out_of_scope_recall']:.4f}** ({routed['out_of_scope_rows']} "
            f"out-of-scope rows), **balanced score {balanced:.4f}** (their mean, which the threshold maximises on "
            f"validation), out-of-scope precision {routed['out_of_scope_precision']:.4f}; handed over "
            f"{routed['handover_share']:.1%} of the rows below confidence {routed['threshold']:.4f} (chosen on "
            "validation). One model on one test sample: no interval; out-of-scope AUROC is not computed")


def _evaluation_views(paths: RunFolder, split: str, scores: dict[str, Any]) -> str:
    """Calibration, the confusion matrix as counts and shares, accuracy by length quartile: numbers and figures."""
    lines = []
    calibration = scores.get("calibration")
    if calibration:
        lines += ["", f"### Calibration ({split})", "",
                  f"expected calibration error **{calibration['ece']:.4f}** over {calibration['n_bins']} equal-width "
                  "bins of the predicted class's probability (0: confidence matches accuracy)"]
        lines += _figure_lines(paths, "calibration", split)
    confusion = _figure_lines(paths, "confusion", split)
    if confusion:
        lines += ["", f"### Confusion matrix ({split}): counts and share of each true class", *confusion]
    by_length = scores.get("accuracy_by_length")
    if by_length:
        lines += ["", f"### Accuracy by text length ({split})", "",
                  "Quartiles of the token count of the whole text, before truncation; *truncated*: share of texts "
                  "longer than max_seq_length.", "",
                  "| quartile | tokens | n | accuracy | 95% Wilson interval | truncated |",
                  "|---|---|---:|---:|---|---:|"]
        for row in by_length:
            truncated = f"{row['truncated']:.0%}" if "truncated" in row else "—"
            lines.append(f"| {row['group']} | {row['min_tokens']}–{row['max_tokens']} | {row['n']} | "
                         f"{row['accuracy']:.4f} | {row['ci_low']:.3f}–{row['ci_high']:.3f} | {truncated} |")
        lines += _figure_lines(paths, "length", split)
    return "\n".join(lines).lstrip("\n")


def _figure_lines(paths: RunFolder, kind: str, split: str) -> list[str]:
    figure = paths.split_figure(kind, split)
    return ["", f"![{figure.stem}]({_relative(paths, figure)})"] if figure.is_file() else []


def _pretraining_section(pretraining: dict[str, Any]) -> str:
    random_head = " (the checkpoint has no MLM head: \"before\" scores a random one)" \
        if pretraining.get("head_initialised_fresh") else ""
    return "\n".join([
        "## Continued pretraining",
        "",
        f"- {pretraining['steps']} masked-language-model steps from `{pretraining['base_model']}` on "
        f"{pretraining['train_texts']} unlabelled training texts",
        f"- held-out MLM loss {pretraining['heldout_loss_before']:.4f} → {pretraining['heldout_loss_after']:.4f} on "
        f"{pretraining['heldout_texts']} texts never trained on{random_head}",
        "- fine-tuning started from this adapted encoder, with a new classification head",
    ])


def _intermediate_section(intermediate: dict[str, Any]) -> str:
    rows = sum(entry["rows"] for entry in intermediate["train_data"].values())
    best = intermediate.get("best_metric")
    return "\n".join([
        "## Intermediate task",
        "",
        f"- {intermediate['global_step']} fine-tuning steps from `{intermediate['started_from']}` on {rows} training "
        f"rows of {', '.join(intermediate['sources'])}, classes {', '.join(intermediate['label_names'])}"
        + (f" (best validation score {best:.4f})" if best is not None else ""),
        f"- {intermediate['leaked_into_target_evaluation']} of its training texts occur in the target's validation or "
        f"test rows" + (" and were dropped" if intermediate["leakage_removed"] else " and were kept"),
        "- the target's fine-tuning started from this encoder, with a new classification head",
    ])


def _training_section(train: dict[str, Any], paths: RunFolder) -> str:
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
    trained = read_inference_settings(paths.model)  # the model folder records the precision that trained it
    if trained is not None and trained.training_precision is not None:
        facts.append(f"- precision: {trained.training_precision.summary}")
    return "## Training\n\n" + "\n".join(facts)


def _data_section(paths: RunFolder) -> str:
    lines = []
    for label, report in (("cleaning", paths.cleaning_report), ("selection", paths.selection_report),
                          ("mixing", paths.mix_report)):
        summary = read_json(report).get("summary") if report.is_file() else None
        if summary:
            lines.append(f"- {label}: {summary}")
    return "## Data\n\n" + "\n".join(lines) if lines else ""


def _monitoring_section(watched: dict[str, Any]) -> str:
    flagged = ", ".join(watched["flagged"]) or "none"
    lines = [f"- stream `{watched['stream']}`: {watched['texts']} texts in {watched['periods']} periods "
             f"({watched['frequency']}), scored by `{watched['model']}`",
             f"- share predicted `{watched['label']}` up to {watched['baseline_end']} (baseline): "
             f"{watched['baseline_share']:.3f}; limit: baseline + {watched['sigmas']:g} standard errors per period",
             f"- flagged ({len(watched['flagged'])} of {watched['watched_periods']} watched periods): {flagged}"]
    if "accuracy" in watched:
        lines.append(f"- accuracy on the stream's own labels: {watched['accuracy']:.4f}")
    return "## Monitoring\n\n" + "\n".join(lines) + "\n\n![monitoring](figures/monitoring.png)"


def _study_section(name: str, study: dict[str, Any]) -> str:
    lines = [f"## Study: {name}"]
    if study.get("table_markdown"):
        lines += ["", study["table_markdown"]]
    if study.get("reading"):
        lines += ["", study["reading"]]
    return "\n".join(lines)


def _figures_section(paths: RunFolder, shown: str = "") -> str:
    """The figures the sections above (`shown`, their text) did not show already."""
    links = [f"![{p.stem}]({_relative(paths, p)})" for p in sorted(paths.figures.glob("*.png"))]
    links = [link for link in links if link not in shown]
    return "## Figures\n\n" + "\n".join(links) if links else ""
