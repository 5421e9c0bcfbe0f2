"""The benchmark's numbers and its markdown table: medians with min–max, ratios, the FLOP rate, the serving headline,
RESULTS.md.

Hands on the summaries results.json holds and `render_markdown`'s text; computes nothing that is timed.
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import torch

from .workload import BenchSettings

# The serving headline: Predictor rows over the faster pipeline() row at equal accuracy, i.e. a paired TOST of the
# accuracy difference within ±1 point; the goal is 3x. Batch 32 is the fair baseline, but pipeline() pads a
# batch to its longest text, so on mixed lengths batch 1 can be the faster: dividing by the slower would flatter us.
PIPELINE_ROWS = ("pipeline_bs1", "pipeline_bs32")
SERVING_REFERENCE = "predictor_fp32"  # what bf16 and int8 rows are compared with: the same Predictor in fp32
EQUIVALENCE_MARGIN = 0.01
SERVING_TARGET = 3.0


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count: every cell of the table."""
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "n": len(values)}


def ratios(contenders: dict[str, dict], ours: str, others: Sequence[str]) -> dict[str, dict[str, float]]:
    """ours / other on medians; min–max pairs the worst of ours with the best of the other and vice versa."""
    mine = contenders[ours]["examples_per_second"]
    found = {}
    for other in others:
        theirs = contenders[other]["examples_per_second"]
        found[f"{ours}_vs_{other}"] = {"median": mine["median"] / theirs["median"],
                                       "min": mine["min"] / theirs["max"], "max": mine["max"] / theirs["min"]}
    return found


def serving_baseline(contenders: dict[str, dict]) -> str:
    """The pipeline() row with the higher median throughput: the baseline the serving headline divides by."""
    return max(PIPELINE_ROWS, key=lambda name: contenders[name]["examples_per_second"]["median"])


def serving_headline(contenders: dict[str, dict], found: dict[str, dict]) -> dict[str, Any]:
    """The best ratio over the faster pipeline() row among the rows shown equally accurate (TOST vs that row).

    Candidates are the rows with a TOST against the baseline (the Predictor rows). Where none passes, the fastest
    candidate is reported with `equivalent` False: its ratio is measured, but not at a shown equal accuracy.
    `reaches_target` needs both equal accuracy and a median ratio of at least SERVING_TARGET. The same row's ratio
    over pipeline(batch_size=32) is reported beside it.
    """
    baseline = serving_baseline(contenders)
    candidates = [name for name, row in contenders.items() if "equivalence_vs_baseline" in row]
    if not candidates:
        raise ValueError("no contender has a TOST against the baseline; the serving headline needs Predictor rows")
    equivalent = [name for name in candidates if contenders[name]["equivalence_vs_baseline"]["equivalent"]]
    best = max(equivalent or candidates, key=lambda name: found[f"{name}_vs_{baseline}"]["median"])
    ratio = found[f"{best}_vs_{baseline}"]
    return {
        "baseline": baseline,
        "contender": best,
        "ratio": ratio,
        "ratio_vs_pipeline_bs32": found[f"{best}_vs_pipeline_bs32"],
        "accuracy": contenders[best]["accuracy"],
        "baseline_accuracy": contenders[baseline]["accuracy"],
        "equivalent": bool(equivalent),
        "margin": EQUIVALENCE_MARGIN,
        "target": SERVING_TARGET,
        "reaches_target": bool(equivalent) and ratio["median"] >= SERVING_TARGET,
    }


# Accelerate's mixed_precision -> the matmul ceiling a run in it is measured against
CEILING_OF = {"no": "fp32", "bf16": "bf16"}
CEILING_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """numerator[i] / denominator[i] for each repetition (runs that alternated, so both saw the same load), as
    median, min and max over the repetitions."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired runs need as many of each, at least one; got {len(numerator)} and "
                         f"{len(denominator)}")
    each = [a / b for a, b in zip(numerator, denominator)]
    return {"median": float(statistics.median(each)), "min": float(min(each)), "max": float(max(each)),
            "n": len(each)}


def summarise_ceiling(runs: list[list[float]], settings: BenchSettings, precision: str) -> dict[str, Any]:
    """One matmul ceiling (`precision`: "fp32" or "bf16") over every measurement, and each measurement's median (to
    see drift between them)."""
    every = [rate for run in runs for rate in run]
    return {
        "precision": precision,
        "size": settings.matmul_size,
        "threads": torch.get_num_threads(),
        "gflops": stats(every),
        "per_measurement_median": [statistics.median(run) for run in runs],
    }


def summarise_training(runs: dict[str, list[dict]], data_info: dict, model_info: dict,
                       ceilings: dict[str, dict]) -> dict[str, Any]:
    """Per contender: throughput, useful-work GFLOP/s and its share of the ceiling of its own precision, held-out
    accuracy, memory; ours against the rest, and our loop in bf16 against fp32 paired run by run."""
    flops = 6 * model_info["non_embedding_parameters"] * data_info["real_tokens"]
    summary: dict[str, Any] = {"contenders": {}, "flops_per_epoch": flops}
    for name, contender_runs in runs.items():
        precisions = {run["precision"] for run in contender_runs}
        if len(precisions) != 1:
            raise ValueError(f"{name}: runs in several precisions {sorted(precisions)}")
        precision = precisions.pop()
        ceiling = ceilings[CEILING_OF[precision]]["gflops"]["median"]
        rates = [run["examples_per_second"] for run in contender_runs]
        gflops = [flops / run["seconds"] / 1e9 for run in contender_runs]
        accuracies = [run["accuracy"] for run in contender_runs if run.get("accuracy") is not None]
        summary["contenders"][name] = {
            "precision": precision,
            "ceiling": CEILING_OF[precision],
            "examples_per_second": stats(rates),
            "tokens_per_second": stats([data_info["real_tokens"] / run["seconds"] for run in contender_runs]),
            "gflops": stats(gflops),
            "share_of_ceiling": stats([rate / ceiling for rate in gflops]),
            "accuracy": stats(accuracies) if accuracies else None,
            "peak_rss_mb": stats([run["peak_rss_mb"] for run in contender_runs]),
            "peak_rss_whole_mb": stats([run["peak_rss_whole_mb"] for run in contender_runs]),
            "rss_before_mb": stats([run["rss_before_mb"] for run in contender_runs]),
            "threads": sorted({run["threads"] for run in contender_runs}),
            "runs": contender_runs,
        }
    summary["ratios"] = ratios(summary["contenders"], "ours", ("seed_style", "trainer"))
    if "ours_bf16" in runs:
        summary["ratios"]["ours_bf16_vs_ours"] = paired_ratio(
            [run["examples_per_second"] for run in runs["ours_bf16"]],
            [run["examples_per_second"] for run in runs["ours"]])
    return summary


def summarise_study_layout(serial: dict[str, Any], ray: dict[str, Any]) -> dict[str, Any]:
    """A study slice run serially and on Ray workers: wall times, serial / Ray (above 1: Ray is faster), and
    whether the cells' scores came out the same (cell by cell, on every test row)."""
    differing = sorted(key for key in serial["cells"] if serial["cells"][key] != ray["cells"].get(key))
    return {"serial": serial, "ray": ray, "serial_over_ray": serial["seconds"] / ray["seconds"],
            "faster": "ray" if ray["seconds"] < serial["seconds"] else "serial",
            "cells_identical": not differing and set(serial["cells"]) == set(ray["cells"]),
            "differing_cells": differing}


def summarise_default_study(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The default study end to end with mixed_precision "no" and, where it ran, "auto": the runs and fp32 / auto
    wall time (above 1: auto is faster; None unless both ran and succeeded)."""
    both = "auto" in runs and all(run["ok"] for run in runs.values())
    return {"runs": runs, "fp32_over_auto": runs["no"]["seconds"] / runs["auto"]["seconds"] if both else None}


# --- the markdown table -----------------------------------------------------------------------------------------------

def _fmt(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _ratio_fmt(ratio: dict[str, float]) -> str:
    return f"**{ratio['median']:.2f}×** ({ratio['min']:.2f}–{ratio['max']:.2f})"


def _share_fmt(row: dict[str, Any]) -> str:
    share = row["share_of_ceiling"]
    return f"**{share['median']:.0%}** ({share['min']:.0%}–{share['max']:.0%})"


def _accuracy(row: dict[str, Any]) -> str:
    """A training row's held-out accuracy: the median over its runs, with the range where the runs differ."""
    accuracy = row.get("accuracy")
    if accuracy is None:
        return "not scored"
    if accuracy["min"] == accuracy["max"]:
        return f"{accuracy['median']:.1%}"
    return f"{accuracy['median']:.1%} ({accuracy['min']:.1%}–{accuracy['max']:.1%})"


TRAINING_LABELS = {
    "ours": "our loop (`train.train`: length-grouped, dynamic padding, fused AdamW)",
    "ours_bf16": "our loop, `mixed_precision: bf16` (Accelerate's bf16 autocast; fp32 weights and optimizer)",
    "seed_style": "seed-style loop (pad to 128, random batches, for-loop AdamW, no schedule)",
    "trainer": "transformers `Trainer` (`train_sampling_strategy=\"group_by_length\"`)",
}
INFERENCE_LABELS = {
    "pipeline_bs1": "`pipeline()` at its default batch 1",
    "pipeline_bs32": "`pipeline(batch_size=32)`",
    "predictor_fp32": "our `Predictor`, fp32",
    "predictor_bf16": "our `Predictor`, bf16 autocast",
    "predictor_int8": "our `Predictor`, int8 dynamic quantisation",
    "predictor_fp32_pipeline_cut": "our `Predictor`, fp32, cut where `pipeline()` cuts",
    "predictor_bf16_pipeline_cut": "our `Predictor`, bf16 autocast, cut where `pipeline()` cuts",
}
PRECISION_WORDS = {"predictor_bf16": "in bf16 autocast", "predictor_int8": "int8-quantised"}


def _cut(tokenization: dict[str, Any]) -> str:
    """`512, head` or `128, head_tail (32 + the rest from the end)`: tokens per text and which ones are kept."""
    truncation = tokenization["truncation"]
    if truncation == "head_tail":
        head = tokenization["head_tokens"]
        truncation += f" ({head} + the rest from the end)"
    return f"{tokenization['max_length']}, {truncation}"


def _serving_headline_row(inference: dict[str, Any]) -> str:
    """The headline table's serving row: the best ratio over the faster pipeline() row at a shown equal accuracy,
    or the fastest row's measured ratio and that equal accuracy was not shown."""
    head = inference["headline"]
    row = inference["contenders"][head["contender"]]
    baseline = f"`pipeline()` at batch {inference['contenders'][head['baseline']]['batch_size']}"
    margin = f"±{head['margin'] * 100:g} point"
    if head["equivalent"]:
        what = (f"inference: fastest `Predictor` at equal accuracy (TOST {margin}), "
                f"{INFERENCE_LABELS[head['contender']]}, vs {baseline}, the faster `pipeline()` here")
    else:
        what = (f"inference: no `Predictor` row shown within {margin} of `pipeline()`'s accuracy on "
                f"{inference['texts']} texts; the fastest, {INFERENCE_LABELS[head['contender']]}, vs {baseline}, the "
                "faster `pipeline()` here")
    facts = (f"accuracy {head['accuracy']:.1%} vs {head['baseline_accuracy']:.1%}; {_cut(row['tokenization'])}; "
             f"vs `pipeline(batch_size=32)` {head['ratio_vs_pipeline_bs32']['median']:.2f}×; goal ≥ "
             f"{head['target']:g}×: {'met' if head['reaches_target'] else 'not met'}")
    return f"| {what} | {_ratio_fmt(head['ratio'])} ({facts}) |"


def _tost_cell(row: dict[str, Any], key: str) -> str:
    """`+0.2 pt [-0.5, +0.9] equivalent`: Δ accuracy (arm minus reference) with its 90% interval and the verdict."""
    test = row.get(key)
    if test is None:
        return "—"
    verdict = "equivalent" if test["equivalent"] else "not shown"
    return (f"{test['delta'] * 100:+.1f} pt [{test['ci_low'] * 100:+.1f}, {test['ci_high'] * 100:+.1f}] "
            f"{verdict}")


def _inference_section(inference: dict[str, Any]) -> list[str]:
    """The inference table: every row on the same texts, with speed over the baseline, accuracy and TOSTs."""
    margin = f"±{EQUIVALENCE_MARGIN * 100:g} point"
    lines = [
        "## Inference throughput (this machine)",
        "",
        f"{inference['texts']} labelled texts (half UCI sentences, half Blitzer reviews, from the test splits) in, "
        "predicted labels out, tokenisation included, served from the model our loop trained in its last run. "
        f"Every row predicts the same texts, so its speed and its accuracy (against their gold labels; one text is "
        f"{1 / inference['texts']:.1%}) compare directly. `pipeline()` gets the texts in their given order and cuts "
        "them at the model's positions (`truncation=True`); the `Predictor` rows serve at the max length and "
        "truncation saved with the model (`otherdata_inference.json`, as training cut its texts), in length-sorted "
        "batches, as `predict` and `serve` do; the rows \"cut where `pipeline()` cuts\" serve at `pipeline()`'s "
        "length instead, the same tokens it reads, so they differ from it only in batching and precision. Δ accuracy is the row minus the reference on the same texts, with "
        f"its 90% paired-bootstrap interval; \"equivalent\" is a TOST at {margin} (the whole interval inside). "
        "The baseline is the faster `pipeline()` row: a batch of 32 pads to its longest text, so on mixed lengths "
        "it need not beat batch 1.",
        "",
        "| contender | tokens per text, truncation | batch | examples/s | × `pipeline()` batch 1 | "
        "× `pipeline(batch_size=32)` | accuracy | labels agreeing with fp32 `Predictor` | Δ accuracy vs the faster "
        "`pipeline()` | Δ accuracy vs fp32 `Predictor` | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in INFERENCE_LABELS.items():
        row = inference["contenders"].get(name)
        if row is None:
            continue
        over = [_ratio_fmt(inference["ratios"][f"{name}_vs_{other}"]) if name != other else "1.00×"
                for other in PIPELINE_ROWS]
        lines.append(f"| {label} | {_cut(row['tokenization'])} | {row['batch_size']} | "
                     f"{_fmt(row['examples_per_second'], 1)} | {' | '.join(over)} | {row['accuracy']:.1%} | "
                     f"{row['agreement_with_fp32']:.1%} | {_tost_cell(row, 'equivalence_vs_baseline')} | "
                     f"{_tost_cell(row, 'equivalence_vs_fp32')} | {_fmt(row['peak_rss_mb'], 0)} |")
    for name, reason in inference["skipped"].items():
        lines += ["", f"{INFERENCE_LABELS[name]}: {reason}."]
    return lines


def _e2e_lines(e2e: dict[str, Any]) -> list[str]:
    """The default study's wall time per precision, and fp32 / auto where both ran."""
    if e2e.get("skipped"):
        return [f"Not measured in this run ({e2e['reason']})."]
    lines = []
    for requested, run in e2e["runs"].items():
        precision = run["precision"]
        how = f"mixed_precision {requested}" + (f" (picks {precision['mode']}: {precision['reason']})"
                                                 if requested == "auto" else "")
        if run["ok"]:
            lines.append(f"- `python -m otherdata_utils run {run['params']}` at {how}: **{run['seconds'] / 60:.1f} "
                         f"min** wall time ({run['method']}).")
        else:
            lines.append(f"- `python -m otherdata_utils run {run['params']}` at {how} failed after "
                         f"{run['seconds']:.0f} s; the error is in results.json.")
    peak = max(run["largest_process_peak_rss_mb"] for run in e2e["runs"].values())
    lines.append(f"- Largest single process peak RSS {peak:.0f} MB.")
    if e2e["fp32_over_auto"] is not None:
        lines.append(f"- fp32 / auto wall time: **{e2e['fp32_over_auto']:.2f}×** (one run of each, fp32 first).")
    return lines


def _study_layout_lines(layout: dict[str, Any]) -> list[str]:
    """The same cells serially and on Ray: wall times, the ratio, whether the cells' scores agree."""
    if layout.get("skipped"):
        return [f"Not measured: {layout['reason']}."]
    serial, ray = layout["serial"], layout["ray"]
    same = ("every cell's scores identical (accuracy, macro-F1 and each test row's correctness)"
            if layout["cells_identical"] else
            f"cells whose scores differ between the layouts: {', '.join(layout['differing_cells'])} (a cell's "
            "result depends on its thread count)")
    return [f"{len(serial['cells'])} cells (UCI sentence models, one per seed) through the study executor, wall time "
            "from the first cell handed over to the last result (Ray's start-up included).", "",
            "| layout | wall time s | median cell s |", "|---|---|---|",
            f"| serial, {serial['threads_per_cell']} threads per cell | {serial['seconds']:.1f} | "
            f"{statistics.median(serial['cell_seconds'].values()):.1f} |",
            f"| Ray, {ray['workers']} workers × {ray['threads_per_cell']} thread | {ray['seconds']:.1f} | "
            f"{statistics.median(ray['cell_seconds'].values()):.1f} |", "",
            f"Serial / Ray wall time: **{layout['serial_over_ray']:.2f}×** ({layout['faster']} is faster); {same}."]


def render_markdown(results: dict[str, Any]) -> str:
    """RESULTS.md: headline ratios, then each section's medians with min–max, then the machine and the method."""
    machine, settings, data = results["machine"], results["settings"], results["data"]
    training, matmul, inference = results["training"], results["matmul"], results["inference"]
    ours = training["contenders"]["ours"]
    bf16 = training["contenders"].get("ours_bf16")
    lines = [
        "# otherdata benchmarks",
        "",
        f"Written by `python -m otherdata_utils bench{' --quick' if results['quick'] else ''}` on {results['date']}. "
        "Ratios are the headline; absolute numbers are this machine's and move with its load. Every cell is the "
        f"median of the runs with their min–max in brackets.",
        "",
        "## Headline",
        "",
        "| comparison | ratio |",
        "|---|---|",
        f"| training: our loop vs seed-style loop | {_ratio_fmt(training['ratios']['ours_vs_seed_style'])} |",
        f"| training: our loop vs `Trainer` | {_ratio_fmt(training['ratios']['ours_vs_trainer'])} |",
        f"| training: our loop's FLOP/s as a share of the fp32 matmul ceiling | {_share_fmt(ours)} |",
        *([f"| training: our loop in bf16 autocast vs fp32 (paired runs; accuracy {_accuracy(bf16)} vs "
           f"{_accuracy(ours)}) | {_ratio_fmt(training['ratios']['ours_bf16_vs_ours'])} |",
           f"| training: our loop in bf16 autocast, FLOP/s as a share of the bf16 matmul ceiling | "
           f"{_share_fmt(bf16)} |"] if bf16 else
          [f"| training: bf16 autocast | not measured: {results['precision']['reason']} |"]),
        *[f"| inference: `Predictor` {PRECISION_WORDS[name]} vs fp32, both at the saved settings "
          f"(accuracy {inference['contenders'][name]['accuracy']:.1%} vs "
          f"{inference['contenders'][SERVING_REFERENCE]['accuracy']:.1%}) | "
          f"{_ratio_fmt(inference['ratios'][f'{name}_vs_{SERVING_REFERENCE}'])} |"
          for name in ("predictor_bf16", "predictor_int8") if name in inference["contenders"]],
        _serving_headline_row(inference),
        "",
        "## Training throughput (this machine)",
        "",
        f"{data['timed_rows']} examples ({settings['steps']} optimizer steps of {settings['batch_size']}), "
        f"max_seq_length {settings['max_seq_length']}, after {settings['warmup_steps']} untimed warm-up steps on "
        f"{data['warmup_rows']} other examples; {settings['repeats']} runs per contender in rotated order; "
        f"model `{results['model']['name']}` ({results['model']['type']}, {results['model']['layers']} layers, "
        f"hidden {results['model']['hidden_size']}).",
        "",
        "Every contender is then scored on the same held-out labelled texts (the inference texts below), in its own "
        "precision, so each speed comes with its accuracy; each row's share is of the matmul ceiling of its own "
        "precision.",
        "",
        "| contender | precision | examples/s | real tokens/s | GFLOP/s | share of ceiling | held-out accuracy | "
        "peak RSS MB (steps) | threads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in TRAINING_LABELS.items():
        if name not in training["contenders"]:
            continue
        row = training["contenders"][name]
        lines.append(f"| {label} | {row['ceiling']} | {_fmt(row['examples_per_second'], 2)} | "
                     f"{_fmt(row['tokens_per_second'], 0)} | {_fmt(row['gflops'], 1)} | "
                     f"{_fmt(row['share_of_ceiling'], 2)} | {_accuracy(row)} | {_fmt(row['peak_rss_mb'], 0)} | "
                     f"{', '.join(map(str, row['threads']))} |")
    if not bf16:
        lines += ["", f"No bf16 row: `mixed_precision: auto` picks fp32 on this host "
                  f"({results['precision']['reason']})."]
    tokens = data["tokens_per_example"]
    lines += [
        "",
        f"Tokens per example: mean {tokens['mean']:.1f}, median {tokens['median']:.0f}, range {tokens['min']}–"
        f"{tokens['max']} (after truncation); the seed-style loop feeds {data['padded_tokens_fixed']:,} positions "
        f"for {data['real_tokens']:,} real tokens. Tokenising all {data['train_rows']} training rows took "
        f"{data['tokenize_seconds']:.2f} s ({data['tokenize_examples_per_second']:.0f} examples/s), once, before "
        "training and outside the timings.",
        "",
        "## Matmul ceiling and achieved FLOP/s (this machine)",
        "",
        *[f"- Ceiling: {ceiling['precision']} `torch.mm` of two {ceiling['size']}² matrices on {ceiling['threads']} "
          f"threads: **{_fmt(ceiling['gflops'], 1)} GFLOP/s**." for ceiling in matmul.values()],
        "",
        "Each ceiling is measured before the training runs and again after each repetition (the share uses the "
        "median of all).",
        "",
        "Training FLOPs are counted as 6 × non-embedding parameters × real tokens "
        f"(6 × {results['model']['non_embedding_parameters']:,} × {data['real_tokens']:,} = "
        f"{training['flops_per_epoch'] / 1e12:.2f} TFLOP per timed epoch). The count leaves out the attention "
        "score and context matmuls (QKᵀ and AV, which grow with sequence length), the embedding lookups, softmax, "
        "layer norm, GELU, dropout and the optimizer, and counts no work on padding; it counts the pooler and "
        f"classifier ({results['model']['per_example_parameters']:,} parameters) per token although they run once "
        "per example. So it is a useful-work rate: the seed-style loop does far more arithmetic on padding than its "
        "GFLOP/s shows.",
        "",
    ]
    lines += _inference_section(inference)
    lines += ["", "## Peak memory", "",
              f"Method: {results['memory_method']}. Training rows above are the peak during the timed steps; the "
              "process also holds the data, the tokenizer and the libraries, so compare differences, not totals.",
              "",
              "| phase | peak RSS MB | RSS before the phase MB |", "|---|---|---|"]
    for name in training["contenders"]:
        row = training["contenders"][name]
        lines.append(f"| training: {name} (model load, warm-up and timed steps) | {_fmt(row['peak_rss_whole_mb'], 0)} "
                     f"| {_fmt(row['rss_before_mb'], 0)} |")
    for name, value in inference["load_peak_rss_mb"].items():
        lines.append(f"| inference: {name.replace('_', ' ')} | {value:.0f} | |")
    lines += ["", "## End to end: the default study", "", *_e2e_lines(results["e2e"])]
    if results.get("study_layout"):
        lines += ["", "## Study cell layout: serial vs Ray workers (this machine)", "",
                  *_study_layout_lines(results["study_layout"])]
    if results.get("ablations"):
        lines += ["", "## What each part of our loop is worth (this machine)", "",
                  "Our loop with one thing changed, same examples, steps and repetitions; the ratio is against the "
                  "median of the same loop in the training table, fp32 or bf16 (below 1.00× means the change makes "
                  "it slower).", "",
                  "| variant | examples/s | against | ratio | held-out accuracy |", "|---|---|---|---|---|"]
        for row in results["ablations"].values():
            against = "our loop, bf16" if row["baseline"] == "ours_bf16" else "our loop, fp32"
            lines.append(f"| {row['label']} | {_fmt(row['examples_per_second'], 2)} | {against} | "
                         f"{row['vs_baseline']:.2f}× | {_accuracy(row)} |")
    load = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    lines += [
        "", "## Machine", "",
        "| | |", "|---|---|",
        f"| CPU | {machine['cpu_model']} ({machine['usable_cpus']} usable of {machine['logical_cpus']} logical CPUs, "
        f"{machine['cpu_capability']}) |",
        f"| memory | {machine['memory_gb']} GiB |",
        f"| torch threads | {machine['torch_threads']} intra-op, {machine['torch_interop_threads']} inter-op |",
        f"| BLAS | {machine['blas']}: {'; '.join(machine['math_libraries'])} |",
        f"| versions | Python {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']}, "
        f"accelerate {machine['accelerate']}, datasets {machine['datasets']} |",
        f"| platform | {machine['platform']} |",
        f"| load average (1, 5, 15 min) | start {load[0]}, end {load[1]} |",
        f"| benchmark wall time | {results['total_seconds'] / 60:.1f} min |",
        "",
        "## Method",
        "",
        "- One process; the same examples, batch size, max_seq_length and number of optimizer steps for every "
        "training contender, each on a freshly loaded model with the same seed and the same torch threads.",
        "- Timed: one epoch over the timed examples, from the first forward pass to the end of the last optimizer "
        "step (a forward pre-hook and torch's global optimizer step hook); it includes batching and padding, "
        "excludes model loading, tokenisation and the warm-up steps, which run first on their own examples.",
        "- Contenders alternate: each repetition rotates their order, so drifting load hits all of them.",
        "- The seed-style loop is `bench.contenders.seed_style_train`: random batches padded to max_seq_length, "
        "`torch.optim.AdamW(foreach=False, fused=False)`, no schedule, no clipping.",
        "- `Trainer` uses transformers' defaults otherwise (optimizer `adamw_torch_fused`, linear schedule).",
        "- Inference runs are timed from texts to labels; every contender predicts the same texts once untimed first, "
        "and those answers give its accuracy, its agreement with the fp32 `Predictor` and the paired TOSTs "
        "(`stats.equivalence_bootstrap`, 2,000 resamples of the texts). The serving headline is the largest median "
        "ratio over the faster `pipeline()` row among the `Predictor` rows shown equivalent to it; bf16 runs only "
        "where the CPU has native bf16 (AMX or AVX512-BF16).",
    ]
    return "\n".join(lines) + "\n"
