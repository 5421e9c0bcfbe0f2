"""Model-side studies of other data: other-language tweets mixed into an English target, continued pretraining
(TAPT / DAPT) before fine-tuning, and parameter-efficient tuning (LoRA, AdaLoRA through peft) against full tuning.

Hands on PEFT wrapping (`apply_peft`, called by `modeling.load_model_and_tokenizer`), plain merged models to save,
tokenizer coverage tables, and each study's cells, seed summary, comparisons, figure and reading in the run folder.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import sys
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from datasets import Dataset, DatasetDict
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .config import Config
from . import runs

if TYPE_CHECKING:  # the training loop imports the PEFT helpers above; it needs no plotting library
    from matplotlib.figure import Figure

ADAPTER_DIR = "adapter"  # inside a best_model folder: the PEFT adapter that training restores
ARM_OF_METHOD = {"none": "full", "lora": "lora", "adalora": "adalora"}
COVERAGE_TEXTS = 500  # texts per language for the tokenizer coverage table (seeded sample of training texts)


# --- parameter-efficient tuning -----------------------------------------------------------------------------------

def apply_peft(model: PreTrainedModel, config: Config) -> torch.nn.Module:
    """`model` wrapped for `config.peft_method`: LoRA or AdaLoRA adapters on `lora_target_modules`, the new
    classification head fully trainable; "none" returns the model as it is."""
    if config.peft_method == "none":
        return model
    from peft import AdaLoraConfig, LoraConfig, TaskType, get_peft_model

    # TaskType.SEQ_CLS makes peft keep the classification head ("classifier" / "score") fully trainable
    # (modules_to_save): a freshly initialised head cannot be learnt through adapters alone.
    shared = {"task_type": TaskType.SEQ_CLS, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
              "target_modules": config.lora_target_modules or None}
    if config.peft_method == "lora":
        peft_config = LoraConfig(r=config.lora_r, **shared)
    else:
        # AdaLoRA (Zhang et al., ICLR 2023) starts every adapter at 1.5 × the target rank and prunes to lora_r on
        # average. Its schedule needs the number of optimizer steps, which only the training loop knows:
        # `after_optimizer_step` sets it then.
        peft_config = AdaLoraConfig(init_r=math.ceil(1.5 * config.lora_r), target_r=config.lora_r,
                                    total_step=max(config.max_steps, 1), **shared)
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`: nothing for a user to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            return get_peft_model(model, peft_config)
    except ValueError as error:
        raise ValueError(
            f"peft_method={config.peft_method!r} on {config.model_name_or_path!r} ({model.config.model_type}): "
            f"{error}. Set lora_target_modules to the names of this model's attention projections "
            "(BERT, RoBERTa, XLM-R: [query, value]; DistilBERT: [q_lin, v_lin])"
        ) from None


def is_peft_model(model: torch.nn.Module) -> bool:
    # Only an imported peft can have built a PeftModel, so plain models never pay for importing it.
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and all parameters (a PEFT model counts its adapters and both copies of the saved head, as peft's
    own `print_trainable_parameters` does)."""
    return {"trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in model.parameters())}


def plain_model(model: torch.nn.Module) -> PreTrainedModel:
    """A plain transformers model: a PEFT model's adapters merged into a copy of its weights (the original keeps
    its adapters and can train on); any other model as it is. `pipeline()` and `serve` load what this saves."""
    if not is_peft_model(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def save_merged_model(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
    """`modeling.save_model` of the plain (merged) model: a folder `AutoModelForSequenceClassification` and
    `pipeline()` load without peft."""
    from .modeling import save_model

    return save_model(plain_model(model), tokenizer, Path(out_dir))


def save_adapter(model: torch.nn.Module, folder: Path) -> None:
    """A PEFT model's adapter (weights and config) in folder/adapter, for `restore_adapter`; nothing otherwise."""
    if is_peft_model(model):
        model.save_pretrained(str(Path(folder) / ADAPTER_DIR))


def restore_adapter(model: torch.nn.Module, folder: Path) -> bool:
    """Load folder/adapter into a PEFT model's adapters and trainable head; False (nothing done) for other models."""
    if not is_peft_model(model):
        return False
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = Path(folder) / ADAPTER_DIR
    live = model.peft_config[model.active_adapter]
    if getattr(live, "rank_pattern", None) is not None:
        # AdaLoRA saves each adapter cut to the rank pattern of its moment, and peft cuts the live model by the live
        # pattern before loading: a checkpoint from before a later re-allocation must bring its own pattern.
        live.rank_pattern = json.loads((adapter / "adapter_config.json").read_text())["rank_pattern"]
    set_peft_model_state_dict(model, load_file(str(adapter / "adapter_model.safetensors")))
    return True


def after_optimizer_step(model: torch.nn.Module, steps_done: int, total_steps: int) -> None:
    """AdaLoRA's rank allocation after an optimizer step (`steps_done` counts it); nothing for other models.

    AdaLoRA scores every adapter rank by its weight × gradient and prunes the least important on a schedule:
    ranks are kept for the first tenth of training, pruned towards the budget, then frozen for the last fifth.
    It must run after the optimizer step and before the gradients are zeroed.
    """
    if not is_peft_model(model) or not hasattr(model.base_model, "update_and_allocate"):
        return
    schedule = model.peft_config[model.active_adapter]
    if schedule.total_step != total_steps:
        schedule.total_step, schedule.tinit, schedule.tfinal = total_steps, total_steps // 10, total_steps // 5
    model.base_model.update_and_allocate(steps_done)


# --- results shared by the three studies --------------------------------------------------------------------------

@dataclass
class AdaptationResult:
    """A finished study: one row per trained model, the seed summary per arm, each arm against the reference arm,
    the markdown table and reading written to metrics.json / report.md, the figure and the study's folder."""

    name: str
    cells: pd.DataFrame
    summary: pd.DataFrame  # per arm: mean, std, ci_low, ci_high, n (seeds) of the headline accuracy, and means
    comparisons: pd.DataFrame  # per arm: difference to the reference arm, p (Welch), beyond_noise
    table_markdown: str
    reading: str
    figure: Figure
    folder: Path  # runs/<name>/studies/<study>/


@dataclass
class LanguageResult(AdaptationResult):
    coverage: pd.DataFrame  # per language: how the model's tokenizer splits its training texts


@dataclass
class PretrainingResult(AdaptationResult):
    pretraining: pd.DataFrame  # per (seed, arm) with continued pretraining: texts, steps, held-out MLM loss


def _column(rows: Dataset, name: str) -> list:
    return rows.with_format("arrow")[:].column(name).to_pylist()


def balanced_order(labels: Sequence[int], seed: Any) -> list[int]:
    """Positions 0..len(labels)-1 in a seeded random order that cycles through the labels: every prefix is as
    label-balanced as the rows allow, so the first n rows of a pool are a balanced sample for any n."""
    rng = np.random.default_rng(seed)
    by_label = [[int(i) for i in rng.permutation([row for row, value in enumerate(labels) if value == label])]
                for label in sorted(set(labels))]
    return [queue[position] for position in range(max(map(len, by_label), default=0))
            for queue in by_label if position < len(queue)]


def _noise(row: pd.Series, seeds: int) -> str:
    """A comparison's verdict against the seed noise (`metrics.differs_beyond_noise` leaves p empty with one seed,
    and when both arms scored the same on every seed)."""
    if row["beyond_noise"] is None or pd.isna(row["beyond_noise"]):
        return "unresolved (one seed)" if seeds < 2 else "no spread to test (the same score on every seed)"
    return f"{'beyond' if row['beyond_noise'] else 'within'} noise (p = {row['p_value']:.3f})"


def _verdict(row: Optional[pd.Series], seeds: int) -> str:
    return "reference" if row is None else f"{row['difference']:+.3f}, {_noise(row, seeds)}"


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _arm_table(summary: pd.DataFrame, comparisons: pd.DataFrame, headline: str,
               extra: dict[str, tuple[str, str]]) -> str:
    """One markdown line per arm: rows, seeds, mean ± sd and 95% CI of the headline accuracy, the difference to the
    reference with its noise verdict, then `extra` columns ({column: (header, format spec)})."""
    verdicts = {row["arm"]: row for _, row in comparisons.iterrows()}
    header = ["arm", "train rows", "seeds", f"{headline} accuracy (mean ± sd)", "95% CI", "vs reference",
              *(title for title, _ in extra.values())]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for _, row in summary.iterrows():
        cells = [str(row["arm"]), f"{row['n_train']:g}", str(row["n"]),
                 f"{_number(row['mean'])} ± {_number(row['std'])}",
                 f"{_number(row['ci_low'])}–{_number(row['ci_high'])}", _verdict(verdicts.get(row["arm"]), row["n"]),
                 *("—" if pd.isna(row[column]) else format(row[column], spec) for column, (_, spec) in extra.items())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _comparison_lines(summary: pd.DataFrame, comparisons: pd.DataFrame, reference: str) -> list[str]:
    """The reference arm's score, then every other arm's difference sorted by size, with the noise verdicts."""
    from .studies import tally_comparisons

    base = summary[summary["arm"] == reference].iloc[0]
    interval = f" (95% CI {_number(base['ci_low'])}–{_number(base['ci_high'])})" if pd.notna(base["ci_low"]) else ""
    lines = [f"{reference} reaches {_number(base['mean'])}{interval} over {int(base['n'])} seed(s)."]
    ordered = comparisons.sort_values("difference", ascending=False)
    seeds = summary.set_index("arm")["n"]
    lines += [f"- {row['arm']}: {_verdict(row, min(seeds[row['arm']], base['n']))}" for _, row in ordered.iterrows()]
    better, worse, unresolved = tally_comparisons(comparisons)
    lines.append(f"{better} of {len(comparisons)} arm(s) beat {reference} beyond the seed noise, {worse} lost to it "
                 f"beyond the noise, {unresolved} could not be told apart from it.")
    return lines


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in row.items()}
            for row in frame.round(4).astype(object).to_dict(orient="records")]


def plot_arms(summary: pd.DataFrame, *, title: str, xlabel: str, notes: Optional[Sequence[str]] = None,
              path: Optional[Path] = None) -> Figure:
    """Each arm's mean score as a horizontal bar with its 95% interval over seeds (no whisker with one seed), the
    reference arm (first row) at the top; `notes` adds a text per arm after its mean."""
    from .plots import _finish, _new_figure

    fig, ax = _new_figure(figsize=(7.5, 0.5 * len(summary) + 1.8))
    shown = summary.iloc[::-1].reset_index(drop=True)
    low = pd.to_numeric(shown["ci_low"], errors="coerce")
    high = pd.to_numeric(shown["ci_high"], errors="coerce")
    errors = np.vstack([(shown["mean"] - low).fillna(0), (high - shown["mean"]).fillna(0)])
    colors = ["tab:gray" if position == len(shown) - 1 else "tab:blue" for position in range(len(shown))]
    bars = ax.barh(shown["arm"].astype(str), shown["mean"], xerr=errors, color=colors, capsize=3)
    notes = list(notes)[::-1] if notes is not None else [""] * len(shown)
    ax.bar_label(bars, labels=[f"{mean:.3f} {note}".rstrip() for mean, note in zip(shown["mean"], notes)],
                 padding=4, fontsize=8)
    ax.set_xlim(0, 1.25)  # room on the right for the labels
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, path)


def _study_data(config: Config, study: str) -> tuple[DatasetDict, list[str], str]:
    from . import pipeline

    prepared = pipeline.load_prepared(config)
    present = sorted(set(_column(prepared["train"], "domain")))
    if config.target_domain not in present:
        raise ValueError(f"{study} needs target_domain set to a domain of the training data ({present}); got "
                         f"{config.target_domain!r}")
    return prepared, list(prepared["train"].features["label"].names), config.target_domain


# --- study: other languages -----------------------------------------------------------------------------------------

def tokenizer_coverage(tokenizer: PreTrainedTokenizerBase, texts_by_group: dict[str, Sequence[str]]) -> pd.DataFrame:
    """How a tokenizer splits each group's texts (languages, say): one row per group.

    `unk_share`: tokens that are the unknown token (text the vocabulary cannot spell at all). `tokens_per_word`:
    tokens per whitespace-separated word. `single_letter_share`: tokens that are one letter once a sub-word marker
    ('##', '▁', 'Ġ') is stripped, i.e. text spelled out letter by letter: the tokenizer reads it, but the pretrained
    model has learnt little from such pieces. `latin_letter_share`: letters in Latin script (romanised text reaches
    an English vocabulary; other scripts only as single letters, if at all).
    """
    rows = []
    for group, texts in texts_by_group.items():
        texts = [text for text in texts if text.strip()]
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        pieces = [tokenizer.convert_ids_to_tokens(row) for row in ids]
        tokens = sum(map(len, ids))
        unknown = sum(token == tokenizer.unk_token_id for row in ids for token in row)
        single = sum(len(stripped) == 1 and stripped.isalpha()
                     for row in pieces for stripped in (piece.lstrip("#▁Ġ") for piece in row))
        letters = [character for text in texts for character in text if character.isalpha()]
        latin = sum(unicodedata.name(character, "").startswith("LATIN") for character in letters)
        words = sum(len(text.split()) for text in texts)
        rows.append({"language": group, "texts": len(texts), "words": words, "tokens": tokens,
                     "tokens_per_word": tokens / max(words, 1), "unk_share": unknown / max(tokens, 1),
                     "single_letter_share": single / max(tokens, 1), "latin_letter_share": latin / max(len(letters), 1)})
    return pd.DataFrame(rows)


def _even_split(total: int, parts: int) -> list[int]:
    return [(total + position) // parts for position in range(parts)]


def language_arms(train: Dataset, target: str, budget: int, target_share: float, seed: int) -> dict[str, Dataset]:
    """Training sets of `budget` rows each: the target language alone, the target plus each other language, and the
    target plus all other languages (when there are several).

    A mixed arm holds round(target_share × budget) target rows and fills the rest from the other language(s),
    split evenly under "+all". Each language's rows are taken in one seeded, label-cycling order (`balanced_order`),
    so all arms of a seed share a language's first rows: arms differ in where rows come from, not in the draw.
    """
    from .clean import take_rows

    domains, labels = _column(train, "domain"), _column(train, "label")
    languages = sorted(set(domains))
    if target not in languages:
        raise ValueError(f"language_arms: target {target!r} is not a domain of the training rows ({languages})")
    ordered = {}
    for position, language in enumerate(languages):
        rows = [row for row, domain in enumerate(domains) if domain == language]
        ordered[language] = [rows[i] for i in balanced_order([labels[row] for row in rows], [seed, position])]
    others = [language for language in languages if language != target]
    kept = round(target_share * budget)
    recipes = {target: {target: budget}}
    recipes.update({f"{target}+{other}": {target: kept, other: budget - kept} for other in others})
    if len(others) > 1:
        recipes[f"{target}+all"] = {target: kept, **dict(zip(others, _even_split(budget - kept, len(others))))}
    arms = {}
    for arm, recipe in recipes.items():
        short = {language: (count, len(ordered[language])) for language, count in recipe.items()
                 if count > len(ordered[language])}
        if short:
            raise ValueError(f"language arm {arm!r} needs more rows than a language has ({short}, as (asked, "
                             "available)); lower max_train_samples")
        rows = [row for language, count in recipe.items() for row in ordered[language][:count]]
        arms[arm] = take_rows(train, rows, f"language arm {arm} {budget} {seed}")
    return arms


def language_budget(config: Config, train: Dataset) -> int:
    """Rows per language arm: max_train_samples, else every target training row."""
    return config.max_train_samples or _column(train, "domain").count(config.target_domain)


def arm_sizes(arms: dict[str, Dataset]) -> pd.DataFrame:
    """Rows per arm and per domain in each arm (0 where an arm has none): the arms' make-up at a glance."""
    counts = {arm: pd.Series(_column(rows, "domain")).value_counts() for arm, rows in arms.items()}
    table = pd.DataFrame(counts).T.fillna(0).astype(int)
    table.insert(0, "rows", [len(rows) for rows in arms.values()])
    return table.rename_axis("arm")


def language_coverage(config: Config, prepared: DatasetDict) -> pd.DataFrame:
    """`tokenizer_coverage` of the config's model on up to COVERAGE_TEXTS training texts of every language."""
    from transformers import AutoTokenizer

    from . import modeling
    from .pretrain import unlabelled_texts

    path = modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    with modeling.quiet_transformers(config.quiet):
        tokenizer = AutoTokenizer.from_pretrained(path)
    languages = sorted(set(_column(prepared["train"], "domain")))
    return tokenizer_coverage(tokenizer, {
        language: unlabelled_texts(prepared, domains=[language], limit=COVERAGE_TEXTS, seed=config.seed)
        for language in languages})


def language_study(config: Config) -> LanguageResult:
    """Does other-language data help an English target? English alone against English + each other language and
    English + all of them, every arm the same size (max_train_samples), over seeds; measured on the target's test
    rows, with every language's test accuracy beside it, and a table of how the model's tokenizer reads each
    language."""
    from .studies import Cell, compare_arms, domain_rows, run_cells, save_study, summarize

    prepared, names, target = _study_data(config, "language_study")
    languages = sorted(set(_column(prepared["train"], "domain")))
    budget = language_budget(config, prepared["train"])
    validation = domain_rows(prepared["validation"], target)
    coverage = language_coverage(config, prepared)

    cells = []
    for seed in config.seeds:
        for arm, rows in language_arms(prepared["train"], target, budget, config.study_language_share, seed).items():
            domains = _column(rows, "domain")
            cells.append(Cell(arm=arm, seed=seed, train=rows, validation=validation, facts={
                "target_rows": domains.count(target), "other_rows": len(domains) - domains.count(target)}))
    results = run_cells(config, cells, prepared["test"], names, headline=target, desc="language arms")
    others = [language for language in languages if f"accuracy_{language}" in results and language != target]
    summary = summarize(results, ["arm"], also=["target_rows", *(f"accuracy_{language}" for language in others)])
    comparisons = compare_arms(results, target)
    figure = plot_arms(summary, title=f"Other languages mixed into {target} (same budget)",
                       xlabel=f"{target} test accuracy (mean, 95% CI)", path=_figure_path(config, "language_mixing"))
    model_name = config.model_name_or_path
    table = "\n\n".join([
        f"*Scientific:* training languages per arm, {budget} rows each; a mixed arm keeps "
        f"{round(config.study_language_share * budget)} {target} rows. *Fixed:* model `{model_name}`, lr "
        f"{config.learning_rate}, {config.num_train_epochs:g} epoch(s), validation on {len(validation)} {target} rows. "
        f"*Seeds:* {', '.join(map(str, config.seeds))}. Intervals: 95% Student-t over seeds, clipped to [0, 1]; "
        f"verdicts: Welch's t-test against {target} alone, p < 0.05.",
        _arm_table(summary, comparisons, target, {
            "target_rows": (f"{target} rows", ".0f"),
            **{f"accuracy_{language}": (f"{language} acc.", ".3f") for language in others}}),
        f"How `{model_name}`'s tokenizer reads each language ({COVERAGE_TEXTS} training texts at most):",
        _coverage_markdown(coverage)])
    reading = "\n".join([*_coverage_reading(coverage, target, model_name),
                         f"Every arm trains on {budget} rows; mixed arms replace {target} rows by other-language "
                         f"rows, so they ask whether those rows can stand in for {target} ones.",
                         *_comparison_lines(summary, comparisons, target)])
    folder = save_study(config, "language_mixing", {"cells": results, "summary": summary,
                                                    "comparisons": comparisons, "coverage": coverage}, {
        "budget": budget, "target": target, "seeds": list(config.seeds), "summary": _records(summary),
        "comparisons": _records(comparisons), "coverage": _records(coverage), "table_markdown": table,
        "reading": reading})
    return LanguageResult(name="language_mixing", cells=results, summary=summary, comparisons=comparisons,
                          table_markdown=table, reading=reading, figure=figure, folder=folder, coverage=coverage)


def _figure_path(config: Config, stem: str) -> Path:
    from . import pipeline

    return runs.run_folder(config).figure(stem)


def _coverage_markdown(coverage: pd.DataFrame) -> str:
    lines = ["| language | texts | tokens per word | [UNK] share | single-letter tokens | Latin-script letters |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {row.language} | {row.texts} | {row.tokens_per_word:.2f} | {row.unk_share:.1%} | "
              f"{row.single_letter_share:.1%} | {row.latin_letter_share:.1%} |" for row in coverage.itertuples()]
    return "\n".join(lines)


# A language is "unreadable" when this share of its tokens is [UNK], "spelled letter by letter" when this share of
# its tokens are single letters; English tweets have under 10% single-letter tokens with the packaged tokenizer.
UNK_TOO_MANY = 0.2
SINGLE_LETTERS_TOO_MANY = 0.5


def _coverage_reading(coverage: pd.DataFrame, target: str, model_name: str) -> list[str]:
    """What the tokenizer can and cannot read, language by language, from the coverage numbers."""
    by_language = coverage.set_index("language")
    base = by_language.loc[target] if target in by_language.index else None
    lines = [f"Tokenizer of `{model_name}`: [UNK] share {coverage['unk_share'].min():.1%}–"
             f"{coverage['unk_share'].max():.1%} across languages"
             + (f"; {target} {base.tokens_per_word:.2f} tokens per word." if base is not None else ".")]
    unreadable, spelled, readable = [], [], []
    for language, row in by_language.iterrows():
        if language == target:
            continue
        if row.unk_share >= UNK_TOO_MANY:
            unreadable.append(f"{language} ({row.unk_share:.0%} [UNK])")
        elif row.single_letter_share >= SINGLE_LETTERS_TOO_MANY:
            spelled.append(f"{language} ({row.single_letter_share:.0%} single-letter tokens, "
                           f"{row.tokens_per_word:.1f} tokens per word, {row.latin_letter_share:.0%} Latin letters)")
        else:
            readable.append(f"{language} ({row.tokens_per_word:.1f}, {row.latin_letter_share:.0%} Latin letters)")
    if unreadable:
        lines.append("Cannot read: " + ", ".join(unreadable) + ": most of the text reaches the model as [UNK].")
    if spelled:
        lines.append("Reads only letter by letter: " + ", ".join(spelled) + ". Nothing is lost to [UNK], but the "
                     "pieces are single characters the pretrained model learnt little about: what it takes from these "
                     "rows it must learn during fine-tuning.")
    if readable:
        lines.append("Splits into sub-words (tokens per word): " + ", ".join(readable) + "; Latin-script text "
                     "shares many pieces with English, though not their meaning.")
    if unreadable or spelled:
        lines.append("A multilingual model (params/study_language_online.yaml, with the Hub) is the fair test for "
                     "the languages above; with this vocabulary a loss from them says more about the tokenizer than "
                     "about the data.")
    return lines


# --- study: continued pretraining (TAPT / DAPT) ---------------------------------------------------------------------

def pretraining_arms(config: Config, target: str) -> list[str]:
    """"none" (fine-tune the checkpoint as it is), "tapt" (MLM on the target's training texts), and "dapt" (MLM on
    `pretrain_domains`' training texts) when other domains are named."""
    if target in config.pretrain_domains:
        raise ValueError(f"pretrain_domains {config.pretrain_domains} holds the target {target!r}: DAPT is other-"
                         "domain text, and the tapt arm already pretrains on the target; name other domains only")
    return ["none", "tapt"] + (["dapt"] if config.pretrain_domains else [])


def pretraining_texts(config: Config, prepared: DatasetDict, arm: str, target: str, seed: int) -> list[str]:
    """Unlabelled training texts for a continued-pretraining arm: the target's (tapt) or `pretrain_domains`' (dapt),
    a seeded sample of `pretrain_max_texts`; validation and test text never (pretrain.unlabelled_texts refuses)."""
    from .pretrain import unlabelled_texts

    domains = {"tapt": [target], "dapt": list(config.pretrain_domains)}[arm]
    return unlabelled_texts(prepared, domains=domains, splits=("train",), limit=config.pretrain_max_texts, seed=seed)


def continued_pretraining_study(config: Config) -> PretrainingResult:
    """Does masked-language-model pretraining on unlabelled text before fine-tuning help? No continued pretraining
    against TAPT (the target's own training texts) and DAPT (other domains' training texts), `pretrain_steps` each,
    over seeds (each seed pretrains afresh); every arm then fine-tunes on the same target rows and is measured on
    the target's test rows."""
    from .clean import take_rows
    from .pretrain import continue_pretraining, pretrained_model_config
    from .studies import Cell, compare_arms, domain_rows, run_cells, save_study, summarize

    if config.pretrain_steps < 1:
        raise ValueError("continued_pretraining_study needs pretrain_steps ≥ 1 (MLM steps per pretraining arm); "
                         f"got {config.pretrain_steps}")
    prepared, names, target = _study_data(config, "continued_pretraining_study")
    arms = pretraining_arms(config, target)
    pool = domain_rows(prepared["train"], target)
    validation, test = domain_rows(prepared["validation"], target), domain_rows(prepared["test"], target)
    budget = min(config.max_train_samples or len(pool), len(pool))
    frames, records = [], []
    for seed in config.seeds:
        # The same rows for every arm of a seed: arms differ only in the encoder they start from.
        train_rows = take_rows(pool, balanced_order(_column(pool, "label"), seed)[:budget], f"pretraining study {budget} {seed}")
        for arm in arms:
            workdir = Path(tempfile.mkdtemp(prefix="otherdata-pretrain-"))
            try:
                model_config, facts = config, {}
                if arm != "none":
                    texts = pretraining_texts(config, prepared, arm, target, seed)
                    result = continue_pretraining(
                        config.replace(seed=seed), texts, output_dir=workdir / "model",
                        max_steps=config.pretrain_steps, learning_rate=config.pretrain_learning_rate,
                        batch_size=config.per_device_train_batch_size, mlm_probability=config.mlm_probability,
                        seed=seed)
                    model_config = pretrained_model_config(config, result)
                    facts = {"pretrain_texts": result.train_texts, "pretrain_seconds": round(result.seconds, 2),
                             "heldout_loss_before": result.heldout_loss_before,
                             "heldout_loss_after": result.heldout_loss_after}
                    records.append({"seed": seed, "arm": arm, "domains": ", ".join(
                        [target] if arm == "tapt" else config.pretrain_domains), "heldout_texts": result.heldout_texts,
                        "steps": result.steps, "examples_seen": result.examples_seen,
                        "head_initialised_fresh": result.head_initialised_fresh, **facts})
                frames.append(run_cells(model_config, [Cell(arm=arm, seed=seed, train=train_rows,
                                                            validation=validation, facts=facts)],
                                        test, names, headline=target, desc=f"{arm} seed {seed}"))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    results = pd.concat(frames, ignore_index=True)
    pretraining = pd.DataFrame(records)
    also = ["pretrain_seconds", "heldout_loss_before", "heldout_loss_after"] if len(pretraining) else []
    summary = summarize(results, ["arm"], also=also)
    comparisons = compare_arms(results, "none")
    figure = plot_arms(summary, title=f"Continued pretraining before fine-tuning on {target}",
                       xlabel=f"{target} test accuracy (mean, 95% CI)",
                       path=_figure_path(config, "continued_pretraining"))
    table = "\n\n".join([
        f"*Scientific:* continued MLM pretraining before fine-tuning (none, TAPT on {target} training texts"
        + (f", DAPT on {', '.join(config.pretrain_domains)} training texts" if "dapt" in arms else "")
        + f"), {config.pretrain_steps} steps of {config.per_device_train_batch_size} texts at lr "
        f"{config.pretrain_learning_rate}. *Fixed:* model `{config.model_name_or_path}`, fine-tuning on {budget} "
        f"{target} rows, lr {config.learning_rate}, {config.num_train_epochs:g} epoch(s). *Seeds:* "
        f"{', '.join(map(str, config.seeds))} (each seed pretrains afresh). Intervals: 95% Student-t over seeds, "
        "clipped to [0, 1]; verdicts: Welch's t-test against no continued pretraining, p < 0.05.",
        _arm_table(summary, comparisons, target, {
            column: (title, ".2f") for column, title in (("pretrain_seconds", "pretraining s"),
                                                          ("heldout_loss_before", "held-out MLM loss before"),
                                                          ("heldout_loss_after", "after"))
            if column in summary})])
    reading = "\n".join(_pretraining_reading(config, summary, comparisons, pretraining, budget, len(test), target))
    folder = save_study(config, "continued_pretraining", {
        "cells": results, "summary": summary, "comparisons": comparisons, "pretraining": pretraining}, {
        "arms": arms, "target": target, "seeds": list(config.seeds), "pretrain_steps": config.pretrain_steps,
        "summary": _records(summary), "comparisons": _records(comparisons), "pretraining": _records(pretraining),
        "table_markdown": table, "reading": reading})
    return PretrainingResult(name="continued_pretraining", cells=results, summary=summary, comparisons=comparisons,
                             table_markdown=table, reading=reading, figure=figure, folder=folder,
                             pretraining=pretraining)


def _pretraining_reading(config: Config, summary: pd.DataFrame, comparisons: pd.DataFrame,
                         pretraining: pd.DataFrame, budget: int, n_test: int, target: str) -> list[str]:
    lines = [f"Every arm fine-tunes on the same {budget} {target} rows per seed and is scored on {n_test} {target} "
             "test rows."]
    for arm, runs in pretraining.groupby("arm", sort=False):
        lines.append(f"{arm}: {int(runs['pretrain_texts'].mean())} training texts of {runs['domains'].iloc[0]}, "
                     f"{int(runs['steps'].mean())} steps ({runs['examples_seen'].mean() / runs['pretrain_texts'].mean():.1f} "
                     f"passes), {runs['pretrain_seconds'].mean():.0f} s; held-out MLM loss "
                     f"{runs['heldout_loss_before'].mean():.2f} → {runs['heldout_loss_after'].mean():.2f}.")
    if len(pretraining) and pretraining["head_initialised_fresh"].any():
        lines.append(f"`{config.model_name_or_path}` has no MLM head in its checkpoint: the head starts random (the "
                     "'before' loss is a random head's), the first steps mostly train it, and the encoder meanwhile "
                     "learns through a half-trained head. A fall in held-out loss therefore says first that the head "
                     "learnt, not that the encoder adapted; the real DAPT setting is a checkpoint with a trained head "
                     "(bert-base-uncased, roberta-base).")
    lines.append(f"Scale: {config.pretrain_steps} steps of {config.per_device_train_batch_size} texts; Gururangan "
                 "et al. (2020) ran DAPT for 12.5k steps of 2,048 sequences, so this checks the method and its code "
                 "path at a size that runs here, not their result.")
    return lines + _comparison_lines(summary, comparisons, "none")


# --- study: parameter-efficient tuning --------------------------------------------------------------------------------

def peft_arms(config: Config, label_names: Sequence[str]) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, its config, its facts) per `study_peft_methods`: full fine-tuning at `learning_rate`, PEFT methods at
    `study_peft_learning_rate` (else `learning_rate`), with trainable and total parameter counts of the built
    model."""
    from .modeling import load_model_and_tokenizer

    if len(set(config.study_peft_methods)) != len(config.study_peft_methods):
        raise ValueError(f"study_peft_methods {config.study_peft_methods} names a method twice; list each once")
    arms = []
    for method in config.study_peft_methods:
        rate = config.learning_rate if method == "none" else (config.study_peft_learning_rate or config.learning_rate)
        arm_config = config.replace(peft_method=method, learning_rate=rate)
        model, _ = load_model_and_tokenizer(arm_config.replace(quiet=True), label_names)
        arms.append((ARM_OF_METHOD[method], arm_config,
                     {"peft_method": method, "learning_rate": rate, **parameter_counts(model)}))
        del model
    return arms


def peft_study(config: Config) -> AdaptationResult:
    """Full fine-tuning against LoRA and AdaLoRA (`study_peft_methods`) on the config's training set (mixed as the
    config says, per seed), over seeds: accuracy, trainable parameters and training time per model, measured on the
    target's test rows (all test rows without a target)."""
    from . import mix, pipeline
    from .studies import Cell, compare_arms, run_cells, save_study, summarize

    prepared = pipeline.load_prepared(config)
    names = list(prepared["train"].features["label"].names)
    headline = config.target_domain if config.target_domain in set(_column(prepared["test"], "domain")) else None
    arms = peft_arms(config, names)
    reference = "full" if any(arm == "full" for arm, _, _ in arms) else arms[0][0]
    arms.sort(key=lambda arm: arm[0] != reference)  # the reference first, in tables and figure
    training_sets = {seed: mix.mix(prepared["train"], config, seed=seed)[0] for seed in config.seeds}
    frames = []
    for arm, arm_config, facts in arms:
        cells = [Cell(arm=arm, seed=seed, train=training_sets[seed], validation=prepared["validation"], facts=facts)
                 for seed in config.seeds]
        frames.append(run_cells(arm_config, cells, prepared["test"], names, headline=headline, desc=arm))
    results = pd.concat(frames, ignore_index=True)
    results["trainable_share"] = results["trainable_params"] / results["total_params"]
    summary = summarize(results, ["arm"], also=["train_seconds", "trainable_params", "total_params",
                                                "trainable_share", "learning_rate"])
    comparisons = compare_arms(results, reference)
    timing = compare_arms(results, reference, metric="train_seconds")
    scope = headline or "test"
    figure = plot_arms(summary, title="Parameter-efficient tuning against full fine-tuning",
                       xlabel=f"{scope} test accuracy (mean, 95% CI)", path=_figure_path(config, "peft"),
                       notes=[f"({row.trainable_params:,.0f} trainable, {row.train_seconds:.0f} s)"
                              for row in summary.itertuples()])
    table = "\n\n".join([
        f"*Scientific:* how the model is tuned ({', '.join(arm for arm, _, _ in arms)}); LoRA rank {config.lora_r}, "
        f"alpha {config.lora_alpha}, dropout {config.lora_dropout}, target modules "
        f"{config.lora_target_modules or 'peft default for the model type'}. *Nuisance:* learning rate per arm "
        "(set, not tuned: see the table). *Fixed:* model "
        f"`{config.model_name_or_path}`, {int(summary['n_train'].iloc[0])} training rows, "
        f"{config.num_train_epochs:g} epoch(s), batch {config.per_device_train_batch_size}. *Seeds:* "
        f"{', '.join(map(str, config.seeds))}. Intervals: 95% Student-t over seeds, clipped to [0, 1]; verdicts: "
        f"Welch's t-test against {reference}, p < 0.05. Seconds: the whole training call (evaluations included) on "
        "this machine.",
        _arm_table(summary, comparisons, scope, {
            "trainable_params": ("trainable params", ",.0f"), "trainable_share": ("share", ".2%"),
            "learning_rate": ("lr", "g"), "train_seconds": ("train s", ".1f")})])
    reading = "\n".join(_peft_reading(config, summary, comparisons, timing, reference))
    folder = save_study(config, "peft", {"cells": results, "summary": summary, "comparisons": comparisons,
                                         "timing": timing}, {
        "arms": [arm for arm, _, _ in arms], "reference": reference, "seeds": list(config.seeds),
        "summary": _records(summary), "comparisons": _records(comparisons), "timing": _records(timing),
        "table_markdown": table, "reading": reading})
    return AdaptationResult(name="peft", cells=results, summary=summary, comparisons=comparisons,
                            table_markdown=table, reading=reading, figure=figure, folder=folder)


def _peft_reading(config: Config, summary: pd.DataFrame, comparisons: pd.DataFrame, timing: pd.DataFrame,
                  reference: str) -> list[str]:
    by_arm = summary.set_index("arm")
    base = by_arm.loc[reference]
    lines = []
    for arm, row in by_arm.iterrows():
        line = (f"{arm}: {row.trainable_params:,.0f} trainable parameters ({row.trainable_share:.2%} of "
                f"{row.total_params:,.0f}), lr {row.learning_rate:g}, {row.train_seconds:.1f} s per model")
        if arm != reference:
            time_row = timing[timing["arm"] == arm].iloc[0]
            line += (f" ({row.train_seconds / base.train_seconds:.2f}× {reference}'s time, "
                     f"{time_row['difference']:+.1f} s, {_noise(time_row, min(row.n, base.n))})")
            if row.train_seconds > 0.8 * base.train_seconds:
                line += (": little time saved, since the forward and backward passes still run through the whole "
                         "frozen encoder; adapters save optimizer state and weight gradients, i.e. memory")
        lines.append(line + ".")
    if "adalora" in by_arm.index:
        lines.append(f"AdaLoRA's count is at its starting rank ({math.ceil(1.5 * config.lora_r)}); it prunes ranks "
                     f"towards {config.lora_r} on average as it trains, by gradient-based importance.")
    rates = sorted(set(summary["learning_rate"]))
    if len(rates) > 1:
        lines.append(f"The arms use different learning rates ({', '.join(f'{r:g}' for r in rates)}), set rather "
                     "than tuned per arm: adapters usually want a larger step than full fine-tuning.")
    return lines + _comparison_lines(summary, comparisons, reference)
