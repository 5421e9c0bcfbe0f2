"""The language study: other-language tweets mixed into an English target, and how the tokenizer reads each one.

Hands on the language arms, a tokenizer coverage table and the study's `StudyResult` (coverage as an extra table).
"""
from __future__ import annotations

import unicodedata
from typing import Sequence

import pandas as pd
from datasets import Dataset, DatasetDict
from pydantic import Field
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .. import modeling, plots, runs
from ..config import Config
from ..study_registry import StudyParams, register_study, study_params
from ..pretrain import unlabelled_texts
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, finish, plan_cells, prepared_data, run_cells, seeds,
                     study_design, summarize, target_domain)
from .reuse import PlannedCells, with_reuse
from .sampling import balanced_order, column, domain_rows, take
from .tables import arm_table, comparison_lines


class LanguageParams(StudyParams):
    """`study.language`: the target language's share of a mixed arm."""

    share: float = Field(0.5, gt=0, lt=1)


def language_params(config: Config) -> LanguageParams:
    return study_params(config, "language", LanguageParams)


COVERAGE_TEXTS = 500  # texts per language for the tokenizer coverage table (seeded sample of training texts)


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
                     "single_letter_share": single / max(tokens, 1),
                     "latin_letter_share": latin / max(len(letters), 1)})
    return pd.DataFrame(rows)


def _even_split(total: int, parts: int) -> list[int]:
    return [(total + position) // parts for position in range(parts)]


def other_rows(budget: int, target_share: float) -> int:
    """Other-language rows added to `budget` target rows so that the target makes up `target_share` of a mixed arm."""
    return round(budget * (1 - target_share) / target_share)


def language_recipes(target: str, others: Sequence[str], budget: int, added: int) -> dict[str, dict[str, int]]:
    """Each language arm's rows per language: the target alone (`budget` rows), the target plus `added` rows of each
    other language, and plus `added` rows split evenly over all of them (when there are several)."""
    recipes = {target: {target: budget}}
    recipes.update({f"{target}+{other}": {target: budget, other: added} for other in others})
    if len(others) > 1:
        recipes[f"{target}+all"] = {target: budget, **dict(zip(others, _even_split(added, len(others))))}
    return recipes


def language_arms(train: Dataset, target: str, budget: int, target_share: float, seed: int) -> dict[str, Dataset]:
    """Additive training sets: the target language alone (`budget` rows), and the same target rows plus rows of each
    other language, and plus all other languages (when there are several).

    A mixed arm keeps every one of the target arm's rows and adds `other_rows(budget, target_share)` rows from the
    other language(s), split evenly under "+all", so it asks whether other-language rows add to the target data, not
    whether they can replace it. Each language's rows are taken in one seeded, label-cycling order
    (`balanced_order`), so all arms of a seed share a language's first rows: arms differ in what is added, not in
    the draw.
    """
    domains, labels = column(train, "domain"), column(train, "label")
    languages = sorted(set(domains))
    if target not in languages:
        raise ValueError(f"language_arms: target {target!r} is not a domain of the training rows ({languages})")
    ordered = {}
    for position, language in enumerate(languages):
        rows = [row for row, domain in enumerate(domains) if domain == language]
        ordered[language] = [rows[i] for i in balanced_order([labels[row] for row in rows], [seed, position])]
    recipes = language_recipes(target, [language for language in languages if language != target], budget,
                               other_rows(budget, target_share))
    arms = {}
    for arm, recipe in recipes.items():
        short = {language: (count, len(ordered[language])) for language, count in recipe.items()
                 if count > len(ordered[language])}
        if short:
            raise ValueError(f"language arm {arm!r} needs more rows than a language has ({short}, as (asked, "
                             "available)); lower max_train_samples")
        rows = [row for language, count in recipe.items() for row in ordered[language][:count]]
        arms[arm] = take(train, rows, f"language arm {arm} {budget} {seed}")
    return arms


def language_budget(config: Config, train: Dataset) -> int:
    """Target rows in every language arm: max_train_samples, else every target training row."""
    return config.max_train_samples or column(train, "domain").count(config.target_domain)


def arm_sizes(arms: dict[str, Dataset]) -> pd.DataFrame:
    """Rows per arm and per domain in each arm (0 where an arm has none): the arms' make-up at a glance."""
    counts = {arm: pd.Series(column(rows, "domain")).value_counts() for arm, rows in arms.items()}
    table = pd.DataFrame(counts).T.fillna(0).astype(int)
    table.insert(0, "rows", [len(rows) for rows in arms.values()])
    return table.rename_axis("arm")


def language_coverage(config: Config, prepared: DatasetDict) -> pd.DataFrame:
    """`tokenizer_coverage` of the config's model on up to COVERAGE_TEXTS training texts of every language."""
    path = modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    with modeling.quiet_transformers(runs.is_quiet(config)):
        tokenizer = AutoTokenizer.from_pretrained(path)
    languages = sorted(set(column(prepared["train"], "domain")))
    return tokenizer_coverage(tokenizer, {
        language: unlabelled_texts(prepared, domains=[language], limit=COVERAGE_TEXTS, seed=config.seed)
        for language in languages})


def language_study(config: Config) -> StudyResult:
    """Does other-language data help an English target? English alone (max_train_samples rows) against the same
    English rows plus rows of each other language and plus all of them (additive arms), over seeds; measured on the
    target's test rows, with every language's test accuracy beside it, and a table of how the model's tokenizer
    reads each language (what an English-only vocabulary can and cannot show): the extra table "coverage"."""
    prepared, _ = prepared_data(config)
    planned = planned_cells(config)
    target, validation = planned.headline, planned.cells[0].validation
    languages = sorted(set(column(prepared["train"], "domain")))
    budget = language_budget(config, prepared["train"])
    coverage = language_coverage(config, prepared)
    results = run_cells(config, planned.cells, planned.test, planned.label_names, headline=target,
                        desc="language arms")
    others = [language for language in languages if f"accuracy_{language}" in results and language != target]
    summary = summarize(results, ["arm"], also=["n_test", "target_rows", "other_rows",
                                                *(f"accuracy_{language}" for language in others)])
    comparisons = compare_arms(results, target)
    figure = plots.plot_arms(summary, title=f"Other languages added to {target} (the same {target} rows)",
                             xlabel=f"{target} test accuracy (mean, 95% CI)",
                             path=runs.run_folder(config).figure("language_mixing"))
    model_name = config.model_name_or_path
    design = study_design(config, {"added to the target rows": (
        f"nothing, {other_rows(budget, language_params(config).share)} rows of one other language, or as many split "
        "over all of them")}, "the model's initialisation, batch order and which rows of each language are drawn",
        {"target_domain": target, "target rows": f"{budget}, the same in every arm of a seed",
         "validation": f"{len(validation)} {target} rows (checkpoint choice)"})
    table = "\n\n".join([
        arm_table(summary, comparisons, target, {
            "n_test": ("test rows", ".0f"), "target_rows": (f"{target} rows", ".0f"),
            "other_rows": ("other rows", ".0f"),
            **{f"accuracy_{language}": (f"{language} acc.", ".3f") for language in others}}),
        f"How `{model_name}`'s tokenizer reads each language ({COVERAGE_TEXTS} training texts at most):",
        _coverage_markdown(coverage)])
    reading = "\n".join([*_coverage_reading(coverage, target, model_name),
                         f"Every arm keeps the same {budget} {target} rows; mixed arms add other-language rows on top, "
                         "so they ask whether those rows add anything to the target data. They are also larger, so "
                         "at fixed epochs they take more optimizer steps: a gain is the practical gain of adding "
                         "them, not a per-row comparison.",
                         *comparison_lines(summary, comparisons, target)])
    return finish(config, "language_mixing", results, summary, comparisons, design, table, reading, figure,
                  extra={"coverage": coverage}, record={"budget": budget, "target": target})


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
        lines.append("What this model can show: whether adding these rows helps or hurts an English-only encoder "
                     "on English test rows, the practical question for someone who has only such a model. What it "
                     "cannot show: whether the other languages' content carries transferable sentiment signal, since "
                     "for the languages above the encoder sees little more than characters; a null or negative result "
                     "here is no evidence against multilingual data. That question needs a multilingual encoder "
                     "(params/study_language_online.yaml, with the Hub).")
    return lines


def planned_cells(config: Config) -> PlannedCells:
    """Per seed, a cell per language arm (`language_arms`, the target's `language_budget` rows in every arm), the
    target's validation rows; scored on every test row, measured on the target's."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "language_study")
    budget = language_budget(config, prepared["train"])
    validation = domain_rows(prepared["validation"], target)
    cells = []
    for seed in seeds(config):
        for arm, rows in language_arms(prepared["train"], target, budget, language_params(config).share, seed).items():
            domains = column(rows, "domain")
            cells.append(Cell(arm=arm, seed=seed, train=rows, validation=validation, facts={
                "target_rows": domains.count(target), "other_rows": len(domains) - domains.count(target)}))
    return PlannedCells(cells, prepared["test"], names, headline=target)


def plan(config: Config) -> StudyPlan:
    """Per seed: the target language alone, plus each other language, plus all of them (when several); the
    languages are the prepared training rows' domains (01_data). Where the run folder holds stored cells, how many
    it reuses (`with_reuse`)."""
    prepared, _ = prepared_data(config)
    target = target_domain(config, prepared, "language plan")
    arms = list(language_recipes(target, sorted(set(column(prepared["train"], "domain")) - {target}), 0, 0))
    return with_reuse(plan_cells("language", arms, config, {"fine-tuned": len(arms)}), config, planned_cells)


register_study("language", LanguageParams, uses_split_seeds=False, plan=plan)  # each seed draws its rows
