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


def summarise_ceiling(runs: list[list[float]], settings: BenchSettings) -> dict[str, Any]:
    """The matmul ceiling over every measurement, and each measurement's median (to see drift between them)."""
    every = [rate for run in runs for rate in run]
    return {
        "size": settings.matmul_size,
        "threads": torch.get_num_threads(),
        "gflops": stats(every),
        "per_measurement_median": [statistics.median(run) for run in runs],
    }


def summarise_training(runs: dict[str, list[dict]], data_info: dict, model_info: dict,
                       matmul: dict) -> dict[str, Any]:
    """Per contender: throughput, useful-work GFLOP/s and its share of the ceiling, memory; ours against the rest."""
    ceiling = matmul["gflops"]["median"]
    flops = 6 * model_info["non_embedding_parameters"] * data_info["real_tokens"]
    summary: dict[str, Any] = {"contenders": {}, "flops_per_epoch": flops}
    for name, contender_runs in runs.items():
        rates = [run["examples_per_second"] for run in contender_runs]
        gflops = [flops / run["seconds"] / 1e9 for run in contender_runs]
        summary["contenders"][name] = {
            "examples_per_second": stats(rates),
            "tokens_per_second": stats([data_info["real_tokens"] / run["seconds"] for run in contender_runs]),
            "gflops": stats(gflops),
            "share_of_ceiling": stats([rate / ceiling for rate in gflops]),
            "peak_rss_mb": stats([run["peak_rss_mb"] for run in contender_runs]),
            "peak_rss_whole_mb": stats([run["peak_rss_whole_mb"] for run in contender_runs]),
            "rss_before_mb": stats([run["rss_before_mb"] for run in contender_runs]),
            "threads": sorted({run["threads"] for run in contender_runs}),
            "runs": contender_runs,
        }
    summary["ratios"] = ratios(summary["contenders"], "ours", ("seed_style", "trainer"))
    return summary


# --- the markdown table -----------------------------------------------------------------------------------------------

def _fmt(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _ratio_fmt(ratio: dict[str, float]) -> str:
    return f"**{ratio['median']:.2f}×** ({ratio['min']:.2f}–{ratio['max']:.2f})"


TRAINING_LABELS = {
    "ours": "our loop (`train.train`: length-grouped, dynamic padding, fused AdamW)",
    "seed_style": "seed-style loop (pad to 128, random batches, for-loop AdamW, no schedule)",
    "trainer": "transformers `Trainer` (`train_sampling_strategy=\"group_by_length\"`)",
}
INFERENCE_LABELS = {
    "pipeline_bs1": "`pipeline()` at its default batch 1",
    "pipeline_bs32": "`pipeline(batch_size=32)`",
    "predictor_fp32": "our `Predictor`, fp32",
    "predictor_bf16": "our `Predictor`, bf16 autocast",
    "predictor_int8": "our `Predictor`, int8 dynamic quantisation",
}


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
        "batches, as `predict` and `serve` do. Δ accuracy is the row minus the reference on the same texts, with "
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


def render_markdown(results: dict[str, Any]) -> str:
    """RESULTS.md: headline ratios, then each section's medians with min–max, then the machine and the method."""
    machine, settings, data = results["machine"], results["settings"], results["data"]
    training, matmul, inference = results["training"], results["matmul"], results["inference"]
    ours = training["contenders"]["ours"]
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
        f"| training: our loop's FLOP/s as a share of the fp32 matmul ceiling | "
        f"**{ours['share_of_ceiling']['median']:.0%}** ({ours['share_of_ceiling']['min']:.0%}–"
        f"{ours['share_of_ceiling']['max']:.0%}) |",
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
        "| contender | examples/s | real tokens/s | GFLOP/s | share of ceiling | peak RSS MB (steps) | threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in TRAINING_LABELS.items():
        row = training["contenders"][name]
        lines.append(f"| {label} | {_fmt(row['examples_per_second'], 2)} | {_fmt(row['tokens_per_second'], 0)} | "
                     f"{_fmt(row['gflops'], 1)} | {_fmt(row['share_of_ceiling'], 2)} | "
                     f"{_fmt(row['peak_rss_mb'], 0)} | {', '.join(map(str, row['threads']))} |")
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
        f"Ceiling: fp32 `torch.mm` of two {matmul['size']}² matrices on {matmul['threads']} threads: "
        f"**{_fmt(matmul['gflops'], 1)} GFLOP/s**, measured before the training runs and again after each "
        "repetition (the share uses the median of all).",
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
    for name, label in TRAINING_LABELS.items():
        row = training["contenders"][name]
        lines.append(f"| training: {name} (model load, warm-up and timed steps) | {_fmt(row['peak_rss_whole_mb'], 0)} "
                     f"| {_fmt(row['rss_before_mb'], 0)} |")
    for name, value in inference["load_peak_rss_mb"].items():
        lines.append(f"| inference: {name.replace('_', ' ')} | {value:.0f} | |")
    e2e = results["e2e"]
    lines += ["", "## End to end: the default study", ""]
    if e2e.get("skipped"):
        lines.append(f"Not measured in this run ({e2e['reason']}).")
    elif e2e["ok"]:
        lines.append(f"`python -m otherdata_utils run {e2e['params']}`: **{e2e['seconds'] / 60:.1f} min** wall time "
                     f"({e2e['method']}); largest single process peak RSS {e2e['largest_process_peak_rss_mb']:.0f} MB.")
    else:
        lines.append(f"`python -m otherdata_utils run {e2e['params']}` failed after {e2e['seconds']:.0f} s; the error "
                     "is in results.json.")
    if results.get("ablations"):
        lines += ["", "## What each part of our loop is worth (this machine)", "",
                  "Our loop with one thing changed, same examples, steps and repetitions; the ratio is against our "
                  "loop's median in the training table (below 1.00× means the change makes it slower).", "",
                  "| variant | examples/s | vs our loop |", "|---|---|---|"]
        for row in results["ablations"].values():
            lines.append(f"| {row['label']} | {_fmt(row['examples_per_second'], 2)} | {row['vs_ours']:.2f}× |")
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
