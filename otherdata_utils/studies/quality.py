"""Data-quality studies: annotator agreement, readers' helpfulness votes, and label noise injected in other data.

Hands on each study's arm builders and its `StudyResult` (cells, seed summary, comparisons, quality curve, reading).
"""
from __future__ import annotations

import hashlib
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import ClassLabel, Dataset, Features, Value
from pydantic import Field, field_validator, model_validator

from .. import label_errors, mix, plots, runs
from ..label_errors import FLIP_COLUMN
from ..config import Config
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, StudyPlan, StudyResult, clean_data, compare_arms, finish, plan_cells, prepared_data,
                     reported_groups, run_cells, seeds, study_design, summarize, target_domain)
from .reuse import PlannedCells, with_reuse
from .selection_arms import encoder_for
from .sampling import column, domain_rows, equal_size_arms, proportional, ranked_strata, take
from .tables import comparison_sentence, number, number_signed, reference_line, results_markdown

# Agreement levels are stored as float32 (0.66 reads back as 0.6600000262): compare with a little slack.


class QualityParams(StudyParams):
    """`study.quality`: the agreement arms' lowest levels and the other data's label-noise shares."""

    agreement_levels: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.66, 0.5], min_length=1)
    noise_levels: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.3], min_length=1)  # OTHER data flipped
    # cleaning arms: at each of these noise levels, the same noisy rows with the other rows confident learning flags
    # (`label_errors.flag_known_flips`: the frozen-encoder probe's out-of-fold probabilities) dropped before mixing
    cleaning: list[float] = Field(default_factory=list)

    @field_validator("agreement_levels")
    @classmethod
    def _agreement(cls, value: list) -> list:
        return distinct_values(value, "in (0, 1]", lambda v: 0 < v <= 1)

    @field_validator("noise_levels")
    @classmethod
    def _noise(cls, value: list) -> list:
        return distinct_values(value, "in [0, 1)", lambda v: 0 <= v < 1)

    @model_validator(mode="after")
    def _cleaning(self) -> "QualityParams":
        unknown = sorted(set(self.cleaning) - set(self.noise_levels))
        if unknown:
            raise ValueError(f"cleaning {unknown}: each level must be one of noise_levels {self.noise_levels}, whose "
                             "noisy arm the cleaned one is compared with")
        return self


def quality_params(config: Config) -> QualityParams:
    return study_params(config, "quality", QualityParams)



_LEVEL_SLACK = 1e-6


# --- data quality: annotator agreement -------------------------------------------------------------------------------

def level_name(level: float) -> str:
    """An agreement level as a percentage name: 0.66 -> '66%'."""
    return f"{level:.0%}"


def agreement_pools(train: Dataset, levels: Sequence[float]) -> dict[str, Dataset]:
    """Arm "≥t" per level t, highest first: every training row whose annotator agreement is at least t."""
    agreement = column(train, "agreement")
    if all(value is None for value in agreement):
        raise ValueError("agreement arms need rows with an annotator agreement (financial_phrasebank); these "
                         "training rows have none")
    return {f"≥{level_name(level)}": take(train, [row for row, value in enumerate(agreement)
                                                  if value is not None and value >= level - _LEVEL_SLACK],
                                          f"agreement >= {level}")
            for level in sorted(levels, reverse=True)}


def agreement_arms(train: Dataset, levels: Sequence[float], *, seed: int,
                   limit: Optional[int] = None) -> dict[str, Dataset]:
    """Nested training sets: arm "≥t" holds every training row whose annotator agreement is at least t.

    With `limit`, the widest arm is cut to `limit` rows keeping each (agreement, label) stratum's share (seeded);
    every arm draws from that cut, so the arms stay nested and keep the natural proportions of the levels. Size and
    agreement change together here; the study trains `equal_agreement_arms`, and notebook 08 sets the two side by
    side to show why.
    """
    lowest = min(levels)
    candidates = agreement_pools(train, [lowest])[f"≥{level_name(lowest)}"]
    ranked = ranked_strata(candidates, seed, columns=("agreement", "label"))
    counts = proportional({key: len(rows) for key, rows in ranked.items()}, limit or len(candidates))
    kept = sorted(row for key, rows in ranked.items() for row in rows[:counts[key]])
    kept_agreement = column(candidates, "agreement")
    return {f"≥{level_name(level)}": take(candidates, [row for row in kept
                                                       if kept_agreement[row] >= level - _LEVEL_SLACK],
                                          f"agreement arm {level} {seed} {limit}")
            for level in sorted(levels, reverse=True)}


def equal_agreement_arms(train: Dataset, levels: Sequence[float], *, seed: int,
                         limit: Optional[int] = None) -> dict[str, Dataset]:
    """Equal-size training sets that differ only in annotator agreement: arm "≥t" draws from the rows at agreement
    ≥ t (`agreement_pools`) as many rows per label as the smallest pool (the highest level's) holds, capped
    together at `limit` (`equal_size_arms`). Lower arms mix in lower-agreement rows at their natural proportions, so
    mean agreement falls from arm to arm while size and label make-up stay put."""
    pools = agreement_pools(train, levels)
    return equal_size_arms(pools, {arm: {arm: 1.0} for arm in pools}, seed=seed, limit=limit)


def planned_agreement(config: Config, source: str = "financial_phrasebank") -> PlannedCells:
    """Per seed, a cell per agreement level (`equal_agreement_arms` of `source`'s rows, loaded and cleaned afresh),
    validated on the top level's validation rows; scored on every test row, grouped by agreement level and measured
    on the top level's."""
    params = quality_params(config)
    dataset = clean_data(config, sources=[source], target_domain=None, few_shot_k=None, mixing_strategy="concat",
                         mixing_ratios={})
    levels = sorted(params.agreement_levels, reverse=True)
    validation_agreement = column(dataset["validation"], "agreement")
    validation = take(dataset["validation"], [row for row, value in enumerate(validation_agreement)
                                              if value >= max(levels) - _LEVEL_SLACK], "validation at top level")
    pool_sizes = {arm: len(rows) for arm, rows in agreement_pools(dataset["train"], levels).items()}
    cells = []
    for seed in seeds(config):
        arms = equal_agreement_arms(dataset["train"], levels, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=validation, facts={
            "min_agreement": level, "mean_agreement": float(np.mean(column(rows, "agreement"))),
            "pool_rows": pool_sizes[arm]}) for (arm, rows), level in zip(arms.items(), levels)]
    return PlannedCells(cells, dataset["test"], list(dataset["train"].features["label"].names),
                        headline=level_name(max(levels)),
                        groups=[level_name(value) for value in column(dataset["test"], "agreement")])


def agreement_study(config: Config, source: str = "financial_phrasebank") -> StudyResult:
    """Annotator agreement as data quality, size held fixed: equal-size arms of rows at agreement ≥ 100%, ≥ 75%,
    ... (`equal_agreement_arms`, the same label make-up), measured on the unanimous (AllAgree) test rows, whose
    labels are the most trustworthy yardstick. The other levels' test rows are reported beside them."""
    params = quality_params(config)
    planned = planned_agreement(config, source)
    levels = sorted(params.agreement_levels, reverse=True)
    top, validation = planned.headline, planned.cells[0].validation
    results = run_cells(config, planned.cells, planned.test, planned.label_names, headline=top, groups=planned.groups,
                        desc="agreement")
    groups = sorted(reported_groups(results, top), key=lambda name: -float(name.rstrip("%")))
    summary = summarize(results, ["arm", "min_agreement"],
                        also=["mean_agreement", "pool_rows", *(f"accuracy_{g}" for g in groups)])
    reference = f"≥{top}"
    comparisons = compare_arms(results, reference)
    curves = pd.concat([summarize(results, ["min_agreement"], metric=f"accuracy_{group}").assign(
        series=f"test rows at {group}") for group in [top, *groups]])
    figure = plots.plot_quality_curve(curves.rename(columns={"min_agreement": "x"}),
                                      path=runs.run_folder(config).figure("quality_agreement"),
                                      xlabel="lowest annotator agreement in training (equal-size arms)",
                                      title="Annotator agreement at a fixed size (Financial PhraseBank)")
    design = study_design(config, {"lowest agreement level in training": levels},
                          "the model's initialisation, batch order and which rows of each pool are drawn",
                          {"source": source, "test yardstick": f"{top}-agreement test rows",
                           "validation": f"{len(validation)} {top}-agreement rows",
                           "sizes": "equal per label: the smallest pool's (the highest level's), capped at "
                                    "max_train_samples"})
    table = results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, f"{top}-agreement",
                             test_rows=int(results["n_test"].iloc[0]))
    return finish(config, "quality_agreement", results, summary, comparisons, design, table,
                  _agreement_reading(summary, comparisons, reference, top, groups), figure)


def _agreement_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, reference: str, top: str,
                       groups: list[str]) -> str:
    agreement = ", ".join(f"{row.arm} {row.mean_agreement:.0%} (pool {row.pool_rows:,.0f})"
                          for row in summary.itertuples())
    lines = [
        f"Measured on the {top}-agreement test rows: where every annotator agreed, the gold label is least in "
        "doubt, so a model is not marked wrong for siding with a defensible minority reading.",
        f"Every arm trains on {summary['n_train'].iloc[0]:g} rows with the same label make-up; only the agreement of "
        f"those rows changes (mean agreement per arm, and the pool it is drawn from: {agreement}). A difference is "
        "therefore one of label quality at a fixed size, not of size.",
        reference_line(summary, summary["arm"] == reference, f"Training on {reference} rows only") + ". "
        + comparison_sentence(comparisons),
    ]
    if groups:
        lowest = groups[-1]
        narrow, wide = summary.iloc[0], summary.iloc[-1]
        lines.append(f"On the {lowest}-agreement test rows, whose labels are contested, mean accuracy is "
                     f"{number(narrow[f'accuracy_{lowest}'])} for {narrow['arm']} and "
                     f"{number(wide[f'accuracy_{lowest}'])} for {wide['arm']} (descriptive, no test on these rows).")
    return "\n\n".join(lines)


# --- data quality: helpfulness votes ---------------------------------------------------------------------------------

def helpfulness_pools(train: Dataset, *, min_votes: int = 3, high: float = 0.75,
                      low: float = 0.5) -> dict[str, Dataset]:
    """Reviews by their readers' verdict: "high" (at least `min_votes` votes, helpful share ≥ `high`), "low"
    (share < `low`) and "unrated" (no votes). Reviews with fewer votes or a share in between are left out."""
    helpful, total = column(train, "helpful_votes"), column(train, "total_votes")
    if all(value is None for value in total):
        raise ValueError("helpfulness_pools needs helpfulness votes (blitzer_mds); these training rows have none")
    bucket = {"high": [], "low": [], "unrated": []}
    for row, (votes, out_of) in enumerate(zip(helpful, total)):
        if not out_of:
            bucket["unrated"].append(row)
        elif out_of >= min_votes and votes / out_of >= high:
            bucket["high"].append(row)
        elif out_of >= min_votes and votes / out_of < low:
            bucket["low"].append(row)
    return {name: take(train, rows, f"helpfulness {name} {min_votes} {high} {low}") for name, rows in bucket.items()}


# Each arm's share of rows from each pool; the low pool's share is the x axis of the helpfulness curve.
HELPFULNESS_RECIPES = {"high": {"high": 1.0}, "high+low": {"high": 0.5, "low": 0.5}, "low": {"low": 1.0},
                        "unrated": {"unrated": 1.0}}


def planned_helpfulness(config: Config, *, min_votes: int = 3, high: float = 0.75, low: float = 0.5) -> PlannedCells:
    """Per seed, a cell per `HELPFULNESS_RECIPES` arm (equal-size rows of the `helpfulness_pools`, drawn by the
    seed); scored on every prepared test row."""
    prepared, names = prepared_data(config)
    pools = helpfulness_pools(prepared["train"], min_votes=min_votes, high=high, low=low)
    cells = []
    for seed in seeds(config):
        arms = equal_size_arms(pools, HELPFULNESS_RECIPES, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=prepared["validation"],
                       facts={"low_share": HELPFULNESS_RECIPES[arm].get("low", 0.0)}) for arm, rows in arms.items()]
    return PlannedCells(cells, prepared["test"], names)


def helpfulness_study(config: Config, *, min_votes: int = 3, high: float = 0.75, low: float = 0.5) -> StudyResult:
    """Readers' helpfulness votes as data quality: equal-size training sets of highly rated, poorly rated, half of
    each, and unrated reviews, with the same (domain, label) make-up; measured on every test row."""
    planned = planned_helpfulness(config, min_votes=min_votes, high=high, low=low)
    results = run_cells(config, planned.cells, planned.test, planned.label_names, desc="helpfulness")
    groups = reported_groups(results, None)
    summary = summarize(results, ["arm", "low_share"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "high")
    rated = summary[summary["arm"] != "unrated"].assign(series="rated reviews")
    figure = plots.plot_quality_curve(_with_reference_band(rated, summary[summary["arm"] == "unrated"], "low_share",
                                                           "unrated (reference)"),
                                      path=runs.run_folder(config).figure("quality_helpfulness"),
                                      xlabel="share of low-helpfulness reviews in training",
                                      title="Helpfulness votes as data quality (equal sizes)")
    design = study_design(config, {"training reviews": list(HELPFULNESS_RECIPES)},
                          "the model's initialisation, batch order and which reviews of each bucket are drawn",
                          {"high": f"≥ {min_votes} votes, ≥ {high:.0%} helpful",
                           "low": f"≥ {min_votes} votes, < {low:.0%} helpful", "unrated": "no votes",
                           "sizes": "equal per (domain, label) stratum"})
    table = results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, "test",
                             test_rows=int(results["n_test"].iloc[0]))
    lines = [f"Every arm trains on {summary['n_train'].iloc[0]:g} reviews with the same domain and label make-up "
             f"(helpfulness goes with the label: poorly rated reviews are mostly negative, so unmatched sets "
             f"would compare labels, not quality); measured on {int(results['n_test'].iloc[0])} test reviews.",
             reference_line(summary, summary["arm"] == "high", "Training on highly rated reviews") + ". "
             + comparison_sentence(comparisons)]
    return finish(config, "quality_helpfulness", results, summary, comparisons, design, table, "\n\n".join(lines),
                  figure)


def _with_reference_band(curve: pd.DataFrame, reference: pd.DataFrame, x: str, series: str) -> pd.DataFrame:
    """`curve` (one series) plus the reference arm, which has no `x` value of its own, repeated at each of the
    curve's `x` values so plot_quality_curve draws it as a flat band; `x` renamed to the plot's "x"."""
    band = pd.concat([reference.assign(**{x: value}) for value in sorted(curve[x])]).assign(series=series)
    return pd.concat([curve, band]).rename(columns={x: "x"})


# --- data quality: injected label noise in the other data ------------------------------------------------------------

def inject_label_noise(rows: Dataset, rate: float, *, seed: int, keep_domain: str,
                       mark_flips: bool = False) -> Dataset:
    """A copy where exactly round(rate · n) of the n rows outside `keep_domain` carry a wrong label (seeded).

    The kept domain is untouched. One seeded ranking and one seeded wrong label per row serve every rate, so the
    rows flipped at a lower rate are flipped, to the same label, at every higher rate. With `mark_flips`, a boolean
    `label_errors.FLIP_COLUMN` says which rows were flipped (what a cleaning arm scores its flags against); the
    study's cells train without it, so the rows they hold are the ones they always held.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"inject_label_noise: rate must be in [0, 1), got {rate}")
    feature = rows.features["label"]
    classes = feature.num_classes if isinstance(feature, ClassLabel) else len(set(column(rows, "label")))
    labels = column(rows, "label")
    others = [row for row, domain in enumerate(column(rows, "domain")) if domain != keep_domain]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(others))
    shifts = rng.integers(1, classes, size=len(others))  # a shift of 1..classes-1 always lands on another class
    flipped = [False] * len(labels)
    for position in order[:round(rate * len(others))]:
        row = others[position]
        labels[row] = (labels[row] + int(shifts[position])) % classes
        flipped[row] = True
    table = rows.with_format("arrow")[:]
    table = table.set_column(table.column_names.index("label"), "label", pa.array(labels, type=pa.int64()))
    info = rows.info.copy()
    if mark_flips:
        table = table.append_column(FLIP_COLUMN, pa.array(flipped, type=pa.bool_()))
        info.features = Features({**rows.features, FLIP_COLUMN: Value("bool")})
    # Like clean.take_rows: a fingerprint derived from the parent's and what decided the change, not a full hash.
    marked = " marked" if mark_flips else ""
    digest = hashlib.blake2b(f"{rows._fingerprint}|noise {rate} {seed} {keep_domain}{marked}".encode(),
                             digest_size=8)
    return Dataset(table, info=info, split=rows.split, fingerprint=digest.hexdigest())


def cleaning_arm(rate: float) -> str:
    return f"noise {rate:.0%}, flagged dropped"


def cleaned_rows(config: Config, train: Dataset, rate: float, *, seed: int, target: str) -> tuple[Dataset, dict]:
    """The noisy rows of `rate` (as its noise arm flips them) less the other rows confident learning flags, and the
    flags' precision and recall against the rows truly flipped (the cell's facts)."""
    marked = inject_label_noise(train, rate, seed=seed, keep_domain=target, mark_flips=True)
    others = [row for row, domain in enumerate(column(marked, "domain")) if domain != target]
    other_rows = take(marked, others, f"other rows of {target}")
    flags, scores = label_errors.flag_known_flips(other_rows, column(other_rows, label_errors.FLIP_COLUMN),
                                                  encoder_for(config), seed=seed)
    dropped = {others[i] for i in np.flatnonzero(flags)}
    kept = take(marked, [row for row in range(len(marked)) if row not in dropped], f"flagged dropped {seed}")
    facts = {"noise": rate, "flagged": scores.flagged, "flipped": scores.flipped,
             "flag_precision": scores.precision, "flag_recall": scores.recall}
    return kept.remove_columns(label_errors.FLIP_COLUMN), facts


def label_noise_cells(config: Config, train: Dataset, validation: Dataset, target: str) -> list[Cell]:
    """Per seed: one cell per noise rate (the other domains' labels flipped, then mixed as the config says), one per
    cleaning level (those noisy rows with the flagged other rows dropped, `cleaned_rows`) and the target-only
    reference. The target rows of a seed are the same clean rows in every cell."""
    params = quality_params(config)
    cells = []
    for seed in seeds(config):
        for rate in params.noise_levels:
            noisy = inject_label_noise(train, rate, seed=seed, keep_domain=target)
            mixed, _ = mix.mix(noisy, config, seed=seed)
            cells.append(Cell(arm=f"noise {rate:.0%}", seed=seed, train=mixed, validation=validation,
                              facts={"noise": rate}))
        for rate in params.cleaning:
            kept, facts = cleaned_rows(config, train, rate, seed=seed, target=target)
            mixed, _ = mix.mix(kept, config, seed=seed)
            cells.append(Cell(arm=cleaning_arm(rate), seed=seed, train=mixed, validation=validation, facts=facts))
        alone, _ = mix.mix(train, config.replace(mixing_strategy="target_only"), seed=seed)
        cells.append(Cell(arm="target_only", seed=seed, train=alone, validation=validation, facts={"noise": None}))
    return cells


def planned_label_noise(config: Config) -> PlannedCells:
    """`label_noise_cells` on the prepared rows, the target's validation rows; scored on every test row, measured
    on the target's."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "label_noise_study")
    if config.mixing_strategy == "target_only":
        raise ValueError("label_noise_study mixes other data into the target: set mixing_strategy to concat, "
                         "proportional, temperature, uniform or fixed (target_only is its reference arm)")
    cells = label_noise_cells(config, prepared["train"], domain_rows(prepared["validation"], target), target)
    return PlannedCells(cells, prepared["test"], names, headline=target)


def label_noise_study(config: Config) -> StudyResult:
    """Label noise in the other data only: the target (few_shot_k rows per class, if set) stays clean, a share of
    the other domains' labels is flipped, then the mix is built as the config says; against target-only."""
    params = quality_params(config)
    planned = planned_label_noise(config)
    target = planned.headline
    results = run_cells(config, planned.cells, planned.test, planned.label_names, headline=target,
                        desc="label noise")
    groups = reported_groups(results, target)
    summary = summarize(results, ["arm", "noise"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "target_only")
    cleaned = [cleaning_arm(rate) for rate in params.cleaning]
    noisy = summary[~summary["arm"].isin(["target_only", *cleaned])].assign(series="target + noisy other data")
    figure = plots.plot_quality_curve(_with_reference_band(noisy, summary[summary["arm"] == "target_only"], "noise",
                                                           "target only (reference)"),
                                      path=runs.run_folder(config).figure("quality_label_noise"),
                                      xlabel="share of other-data labels flipped",
                                      title=f"Label noise in the other data ({target} test rows)")
    design = study_design(config, {"other-data label noise": list(params.noise_levels)},
                          "the model's initialisation, batch order, the few-shot target rows and which labels flip",
                          {"target_domain": target, "few_shot_k": config.few_shot_k,
                           "mixing_strategy": config.mixing_strategy, "mixing_temperature": config.mixing_temperature})
    table = results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, target,
                             test_rows=int(results["n_test"].iloc[0]))
    noisy_only = comparisons[comparisons["arm"] != "target_only"]
    lines = [f"Only the other domains' labels are flipped; the {target} rows stay clean. Measured on "
             f"{int(results['n_test'].iloc[0])} {target} test rows.",
             reference_line(summary, summary["arm"] == "target_only", "Target-only") + ". "
             + comparison_sentence(noisy_only)]
    clean_arm, worst_arm = noisy.iloc[0], noisy.iloc[-1]
    if len(noisy) > 1:
        lines.append(f"From {clean_arm['arm']} to {worst_arm['arm']}, target accuracy moves "
                     f"{worst_arm['mean'] - clean_arm['mean']:+.3f} "
                     f"({number(clean_arm['mean'])} → {number(worst_arm['mean'])}).")
    extra = {}
    if params.cleaning:
        extra["cleaning"] = cleaning_comparisons(results, params.cleaning)
        lines.append(cleaning_sentence(results, extra["cleaning"], comparisons))
    return finish(config, "quality_label_noise", results, summary, comparisons, design, table, "\n\n".join(lines),
                  figure, extra=extra)


def cleaning_comparisons(results: pd.DataFrame, levels: Sequence[float]) -> pd.DataFrame:
    """Each cleaned arm against its noisy arm (the same flipped rows, flagged ones kept), paired over seeds, with the
    flags' mean precision and recall against the true flips."""
    tables = []
    for rate in levels:
        noisy, cleaned = f"noise {rate:.0%}", cleaning_arm(rate)
        table = compare_arms(results[results["arm"].isin([noisy, cleaned])], noisy, anchors=())
        flags = results[results["arm"] == cleaned]
        tables.append(table.assign(flagged=flags["flagged"].mean(), flag_precision=flags["flag_precision"].mean(),
                                   flag_recall=flags["flag_recall"].mean()))
    return pd.concat(tables, ignore_index=True)


def cleaning_sentence(results: pd.DataFrame, cleaning: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """What dropping the flagged rows did at each level: against the noisy arm, and the share of the noise's cost
    (noisy − target-only) it won back."""
    parts = []
    for row in cleaning.itertuples():
        cost = comparisons.loc[comparisons["arm"] == row.reference, "delta"]
        share = (f"; it won back {row.delta / -cost.iloc[0]:.0%} of the noise's cost ({number(cost.iloc[0])} "
                 "against target-only)" if len(cost) and cost.iloc[0] < 0 else "")
        parts.append(f"{row.arm}: confident learning flagged {row.flagged:.0f} other rows a seed (precision "
                     f"{number(row.flag_precision)}, recall {number(row.flag_recall)} against the true flips); "
                     f"dropping them moved accuracy {number_signed(row.delta)} [{number_signed(row.ci_low)}, "
                     f"{number_signed(row.ci_high)}] against {row.reference} ({row.verdict}){share}.")
    return "Cleaning: " + " ".join(parts)


def planned_cells(config: Config) -> list[PlannedCells]:
    """The three studies' cells, each as its `run_cells` call takes them."""
    return [planned_agreement(config), planned_helpfulness(config), planned_label_noise(config)]


def plan(config: Config) -> StudyPlan:
    """Per seed, the three studies of the notebook: one model per agreement level, per `HELPFULNESS_RECIPES` arm,
    and per noise level plus target-only; where the run folder holds stored cells, how many it reuses
    (`with_reuse`)."""
    params = quality_params(config)
    arms = ([f"≥{level_name(level)}" for level in sorted(params.agreement_levels, reverse=True)]
            + list(HELPFULNESS_RECIPES) + [f"noise {level:.0%}" for level in params.noise_levels]
            + [cleaning_arm(level) for level in params.cleaning] + ["target_only"])
    return with_reuse(plan_cells("quality", arms, config, {"fine-tuned": len(arms)}), config, planned_cells)


register_study("quality", QualityParams, uses_split_seeds=False, plan=plan)  # each seed draws its rows and flips
