"""The routing study (CLINC150, Larson et al. 2019): a desk's intents with k labelled queries each, trained alone or
with other desks' intents (another label space) used first (intermediate training, STILTs) or together (one joint
model); every model routes by a confidence threshold chosen on validation and is scored on the same test rows as
in-scope accuracy and out-of-scope recall.

Hands on a `StudyResult` whose comparisons pair every arm with target-only on both scores.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict, concatenate_datasets
from pydantic import Field, field_validator

from .. import anchors, mix, modeling, pipeline, plots, routing, runs, train
from ..config import Config
from ..execution import threads_per_cell
from ..data.schema import build_dataset, record_features
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, StudyPlan, StudyResult, cell_config, compare_arms, correct_text, finish, plan_cells,
                     prepared_data, replicates, rows_fingerprint, run_cells, study_design, summarize, target_domain)
from .reuse import PlannedCells, forget_cells, stored_cells, with_reuse
from .sampling import column, domain_rows, seeded_cap
from .store import cell_key, library_versions
from .tables import comparison_sentence, reference_line, results_markdown


class RoutingParams(StudyParams):
    """`study.routing`: how other desks' intents (another label space) are used (target_only is the reference),
    k queries per intent, the anchors, and the other desks' pool per replicate."""

    arms: list[Literal["target_only", "intermediate", "joint"]] = Field(
        default_factory=lambda: ["target_only", "intermediate", "joint"], min_length=1)
    k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32, 128, None], min_length=1)  # null = all
    anchors: list[Literal["probe", "setfit"]] = Field(default_factory=list)  # on the same k-shot queries
    setfit_max_k: Optional[int] = Field(None, ge=1)  # the SetFit anchor only at k per intent ≤ this (never at all)
    other_rows: Optional[int] = Field(None, ge=0)  # the other desks' queries drawn per replicate; null = all

    @field_validator("k_values")
    @classmethod
    def _k_values(cls, value: list) -> list:
        return distinct_values(value, "≥ 1 or null (all target rows)", lambda v: v is None or v >= 1)


def routing_params(config: Config) -> RoutingParams:
    return study_params(config, "routing", RoutingParams)



ARM_TEXT = {
    "target_only": "target_only = the desk's own k-shot queries, repeated to the target budget (the reference)",
    "intermediate": "intermediate = fine-tuned first on the other desks' pool with their own intents and head "
                    "(STILTs), then on the target_only rows with a fresh head",
    "joint": "joint = one model over the other desks' and this desk's intents, trained on the pool and the "
             "target_only rows together; an answer outside this desk's intents is a handover",
    "probe": "probe = frozen encoder + logistic regression (C on validation) on the k-shot queries",
    "setfit": "setfit = SetFit's few-shot defaults on the k-shot queries",
}


@dataclass(frozen=True)
class RoutingData:
    """The desk's rows (in-scope classes only for training) and the other desks' rows in their own classes."""

    target: str  # the desk: the target domain
    classes: list[str]  # the desk's intents (in-scope classes), then
    names: list[str]  # ... the data's classes: the intents and the out-of-scope class last
    train: Dataset  # the desk's in-scope training rows, in `classes`
    validation: Dataset  # in-scope and out-of-scope rows: the threshold's choice
    in_scope_validation: Dataset  # its in-scope rows, in `classes`: the probe's choice of C
    test: Dataset  # in-scope and out-of-scope rows every cell is scored on
    other: Dataset  # the other desks' training rows, in their own classes
    other_validation: Dataset


def relabelled(rows: Dataset, names: list[str]) -> Dataset:
    """`rows` with their classes re-indexed into `names` (which must hold each row's class): the label space a
    joint model or an in-scope-only model trains in."""
    own = rows.features["label"].names
    index = {name: i for i, name in enumerate(names)}
    data = rows.to_dict()
    data["label"] = [index[own[label]] for label in data["label"]]
    return build_dataset(data, record_features(names))


def routing_data(config: Config) -> RoutingData:
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "routing_study")
    classes = pipeline.trained_classes(config, names)
    in_scope = pipeline.in_scope_rows(DatasetDict(train=domain_rows(prepared["train"], target)), classes)["train"]
    loaded = pipeline.intermediate_rows(config, prepared)
    if loaded is None:
        raise ValueError("routing_study compares arms that use other desks' intents: mark the other desks' source "
                         "intermediate: true (e.g. clinc150 with the other nine domains)")
    other, _ = loaded
    in_scope_validation = pipeline.in_scope_rows(DatasetDict(v=prepared["validation"]), classes)["v"]
    return RoutingData(target=target, classes=classes, names=names, train=relabelled(in_scope, classes),
                       validation=prepared["validation"],
                       in_scope_validation=relabelled(in_scope_validation, classes), test=prepared["test"],
                       other=other["train"],
                       other_validation=other["validation"])


def target_budget(config: Config, target_rows: int) -> int:
    """Rows of the desk's own queries every arm trains on (repeats included): `max_train_samples`, at least once
    each."""
    return max(config.max_train_samples or target_rows, target_rows)


def repeated(rows: Dataset, total: int, target: str, seed: int) -> Dataset:
    """`rows` (all of them) repeated up to `total` rows in a seeded order (`mix.mix_additive`, target-only)."""
    only = Config(target_domain=target, mixing_strategy="target_only", mix_by="domain")
    mixed, _ = mix.mix_additive(rows, only, seed=seed, total=total)
    return mixed


def in_scope_probabilities(probabilities: np.ndarray, columns: list[int]) -> np.ndarray:
    """The desk's classes' probabilities, for routing: a row whose best class is another desk's gets all zeros, so
    any threshold above 0 hands it over (it is not this desk's query)."""
    own = probabilities[:, columns]
    elsewhere = ~np.isin(probabilities.argmax(axis=1), columns)
    own[elsewhere] = 0.0
    return own


@dataclass(frozen=True)
class RoutedCell:
    """One model's routing on the test rows, with the threshold it chose on validation."""

    threshold: float
    scores: routing.RoutingScores
    correct: list[bool]  # per test row: the right intent answered, or an out-of-scope query handed over


def routed(validation_probabilities: np.ndarray, validation: Dataset, test_probabilities: np.ndarray,
           test: Dataset) -> RoutedCell:
    """Threshold chosen on the validation rows, applied to the test rows (`routing`)."""
    threshold, _ = routing.choose_threshold(validation_probabilities, column(validation, "label"))
    labels = np.asarray(column(test, "label"))
    answers = routing.route(test_probabilities, threshold)
    return RoutedCell(threshold, routing.routing_scores(labels, answers, test_probabilities.shape[1]),
                      (answers == labels).tolist())


def fit_and_route(config: Config, train_rows: Dataset, classes: list[str], validation: Dataset, test: Dataset,
                  work_dir: Path, *, start: Optional[str] = None) -> tuple[RoutedCell, float]:
    """Train from `start` (default: the configured model) on `train_rows` in their own classes (the desk's are
    `classes`), route the desk's validation and test rows; returns the routed cell and the training seconds."""
    stage = config if start is None else config.replace(model_name_or_path=start)
    names = list(train_rows.features["label"].names)
    columns = [names.index(name) for name in classes]
    model, tokenizer = modeling.load_model_and_tokenizer(stage, names)
    # validation and test keep the desk's labels: only their texts reach this model, never its loss
    tokenized = modeling.tokenize_splits(DatasetDict(train=train_rows), tokenizer, stage)
    started = time.perf_counter()
    train.train(stage, model, tokenizer, tokenized, output_dir=Path(work_dir), label_names=names)
    seconds = time.perf_counter() - started
    scored = modeling.tokenize_splits(DatasetDict(validation=validation, test=test), tokenizer, stage)
    probabilities = {split: in_scope_probabilities(
        train.predict(model, scored[split], tokenizer, stage).probabilities, columns)
        for split in ("validation", "test")}
    return routed(probabilities["validation"], validation, probabilities["test"], test), seconds


def routed_columns(result: RoutedCell, seconds: float, n_train: int, test: Dataset) -> dict[str, Any]:
    """A routed model's measured columns in the cells table: in-scope accuracy as `accuracy`, every routing score,
    the threshold, seconds, the test rows' fingerprint and per-row correctness."""
    scores = asdict(result.scores)
    return {"n_train": n_train, "accuracy": scores.pop("in_scope_accuracy"), **scores,
            "balanced": result.scores.balanced, "threshold": result.threshold, "n_test": scores["in_scope_rows"],
            "train_seconds": round(seconds, 2), "test_rows": rows_fingerprint(test),
            "correct": correct_text(result.correct)}


def encoder_folder(config: Config, encoder: str) -> Path:
    return runs.run_folder(config).encoders / encoder


def arm_fit(config: Config, train_rows: Dataset, validation: Dataset, test: Dataset, label_names: list[str],
            work_dir: Path, *, classes: list[str], encoder: Optional[str] = None) -> dict[str, Any]:
    """A fine-tuned arm's cell: `fit_and_route`, from the replicate's intermediate encoder where `encoder` names
    one (`encoder_fit` stored it under the run folder)."""
    start = None if encoder is None else str(encoder_folder(config, encoder))
    result, seconds = fit_and_route(config, train_rows, classes, validation, test, work_dir, start=start)
    return routed_columns(result, seconds, len(train_rows), test)


def encoder_fit(config: Config, train_rows: Dataset, validation: Dataset, test: Dataset, label_names: list[str],
                work_dir: Path, *, encoder: str) -> dict[str, Any]:
    """The intermediate arm's encoder of one replicate: fine-tuned on the other desks' pool (`train_rows`, their
    own intents; `validation` theirs too) and moved whole into the run folder's encoders/<encoder>, which every k's
    intermediate cell of the replicate starts from. Its cells-store row records the training only."""
    names = list(train_rows.features["label"].names)
    started = time.perf_counter()
    pipeline.intermediate_encoder(config, DatasetDict(train=train_rows, validation=validation), names,
                                  training_dir=Path(work_dir) / "training", encoder_dir=Path(work_dir) / "encoder")
    target = encoder_folder(config, encoder)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    (Path(work_dir) / "encoder").rename(target)  # one rename under the run folder: a killed cell leaves none
    return {"n_train": len(train_rows), "train_seconds": round(time.perf_counter() - started, 2), "encoder": encoder}


def anchor_fit(config: Config, train_rows: Dataset, validation: Dataset, test: Dataset, label_names: list[str],
               work_dir: Path, *, anchor: str, classes: list[str], in_scope_validation: Dataset) -> dict[str, Any]:
    """An anchor's cell on the k-shot queries (seeded by the cell's seed), scored on validation and test in one
    pass and routed like the arms; the probe chooses its C on the in-scope validation rows."""
    both = concatenate_datasets([validation, test])
    model_path = modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    if anchor == "probe":
        result = anchors.probe_fit_and_score(model_path, train_rows, in_scope_validation, both, label_names,
                                             seed=config.seed, max_length=config.max_seq_length,
                                             quiet=runs.is_quiet(config))
    else:
        result = anchors.setfit_fit_and_score(model_path, train_rows, both, label_names, config.seed,
                                              max_length=config.max_seq_length, quiet=runs.is_quiet(config),
                                              work_dir=work_dir)
    # the anchors' out-of-scope column is 0 (never a training class): routing reads the in-scope ones
    probabilities = np.asarray(result.probabilities)[:, :len(classes)]
    cut = len(validation)
    routed_cell = routed(probabilities[:cut], validation, probabilities[cut:], test)
    return routed_columns(routed_cell, result.train_seconds, len(train_rows), test)


@dataclass(frozen=True)
class RoutingCells:
    """The study's cells (one row each in its table) and the intermediate encoders their cells start from."""

    cells: list[Cell]
    encoders: list[Cell]


def routing_cells(config: Config, data: RoutingData) -> RoutingCells:
    """Per replicate: the other desks' pool (`study.routing.other_rows`, seeded) and the intermediate encoder cell
    trained on it, then per k every arm and anchor on the replicate's k-shot queries.

    An intermediate cell names its encoder by the key of what determines it (fine-tuning parameters and seed, the
    pool's and its validation rows, libraries, threads), so the encoder is keyed into every k's cell it starts."""
    params = routing_params(config)
    joint_names = list(data.other.features["label"].names) + data.classes
    threads = threads_per_cell(config.execution)
    cells, encoders = [], []
    for split_seed, seed in replicates(config):
        pool = seeded_cap(data.other, params.other_rows, split_seed)
        encoder = cell_key({"fine_tuning": cell_config(config, seed), "pool": pool,
                            "validation": data.other_validation, "libraries": library_versions(),
                            "threads": threads})
        if "intermediate" in params.arms:
            encoders.append(Cell(arm="intermediate encoder", seed=seed, split_seed=split_seed, train=pool,
                                 validation=data.other_validation, fit=encoder_fit, arguments={"encoder": encoder}))
        for k in params.k_values:
            k_rows = data.train if k is None else mix.few_shot(data.train, k, seed=split_seed)
            budget = target_budget(config, len(k_rows))
            own = repeated(k_rows, budget, data.target, split_seed)
            facts = {"k_label": "all" if k is None else str(k),
                     "k": round(len(data.train) / len(data.classes)) if k is None else k,
                     "target_unique": len(k_rows), "target_rows": budget, "target_ids": rows_fingerprint(k_rows)}
            rows = {"target_only": own, "intermediate": own,
                    "joint": concatenate_datasets([relabelled(pool, joint_names), relabelled(own, joint_names)]
                                                  ).shuffle(seed=split_seed)}
            for arm in params.arms:
                arguments = {"classes": data.classes, **({"encoder": encoder} if arm == "intermediate" else {})}
                cells.append(Cell(arm=arm, seed=seed, split_seed=split_seed, train=rows[arm],
                                  validation=data.validation, fit=arm_fit, arguments=arguments,
                                  facts={**facts, "other_rows": 0 if arm == "target_only" else len(pool)}))
            for anchor in params.anchors:
                if anchor == "setfit" and not anchors.setfit_runs_at(k, params.setfit_max_k):
                    continue  # anchors.setfit_scope says so in the design
                cells.append(Cell(arm=anchor, seed=seed, split_seed=split_seed, train=k_rows,
                                  validation=data.validation, fit=anchor_fit, facts={**facts, "other_rows": 0},
                                  arguments={"anchor": anchor, "classes": data.classes,
                                             "in_scope_validation": data.in_scope_validation}))
    return RoutingCells(cells, encoders)


def train_encoders(config: Config, planned: RoutingCells, data: RoutingData) -> None:
    """The intermediate encoders that a cell still to train starts from, trained (through `run_cells`, so a Ray
    run sends them out too) where the run folder does not hold them already. An encoder whose stored cell outlived
    its folder is trained again. On a Ray cluster the run folder must be shared: encoders are read from it."""
    waiting = {cell.arguments.get("encoder") for cell, stored in zip(
        planned.cells, stored_cells(config, planned.cells, data.test, data.names)) if not stored}
    missing = [cell for cell in planned.encoders if cell.arguments["encoder"] in waiting
               and not encoder_folder(config, cell.arguments["encoder"]).is_dir()]
    if missing:
        forget_cells(config, missing, data.test, data.names)
        run_cells(config, missing, data.test, data.names, desc="intermediate encoders")


def routing_study(config: Config) -> StudyResult:
    """Do other desks' intents help a desk with few labelled queries route? Target-only against intermediate
    training and one joint model (and the anchors) per k, over replicates, paired, on in-scope accuracy and
    out-of-scope recall; the threshold of every model is chosen on validation."""
    params = routing_params(config)
    if config.out_of_scope_class is None:
        raise ValueError("routing_study routes by a handover threshold: set out_of_scope_class (CLINC150: oos)")
    data = routing_data(config)
    planned = routing_cells(config, data)
    train_encoders(config, planned, data)
    cells = run_cells(config, planned.cells, data.test, data.names, desc="routing")
    also = ["out_of_scope_recall", "balanced", "threshold", "handover_share", "target_unique", "other_rows"]
    summary = summarize(cells, ["k_label", "k", "arm"], also=also)
    recall = summarize(cells, ["k_label", "k", "arm"], metric="out_of_scope_recall")
    reference = "target_only"
    comparisons = routing_comparisons(cells, reference)
    folder = runs.run_folder(config)
    figure = plots.plot_few_shot_curves(summary.rename(columns={"arm": "strategy"}),
                                        path=folder.figure("routing_in_scope_accuracy"),
                                        ylabel="in-scope accuracy (threshold chosen on validation)",
                                        title="Routing: in-scope accuracy, mean and 95% interval over replicates")
    plots.close(plots.plot_few_shot_curves(recall.rename(columns={"arm": "strategy"}),
                                           path=folder.figure("routing_out_of_scope_recall"),
                                           ylabel="out-of-scope recall (handovers)",
                                           title="Routing: out-of-scope recall, mean and 95% interval"))
    in_scope_test = int(cells["in_scope_rows"].iloc[0])
    out_of_scope_test = int(cells["out_of_scope_rows"].iloc[0])
    design = study_design(
        config, {"k per intent": [k if k is not None else "all" for k in params.k_values],
                 "arm": list(params.arms) + list(params.anchors)},
        "the model's initialisation and batch order, and (split seed) the k-shot queries and the other desks' pool",
        {"desk": f"{data.target} ({len(data.classes)} intents)",
         "other desks": f"{len(data.other.features['label'].names)} intents, a pool of "
                        f"{min(len(data.other), params.other_rows or len(data.other))} training queries "
                        "per replicate",
         "threshold": "per model, on validation: max of (in-scope accuracy + out-of-scope recall) / 2",
         "validation": f"{len(data.validation)} rows", "test rows": f"{in_scope_test} in scope + "
                                                                   f"{out_of_scope_test} out of scope",
         "arms": "; ".join(ARM_TEXT[arm] for arm in [*params.arms, *params.anchors])
         + (f"; {setfit_scope}" if (setfit_scope := anchors.setfit_scope(
             params.anchors, params.k_values, params.setfit_max_k)) else "")})
    labels = {"k_label": "k", "arm": "arm", "target_unique": "unique desk queries", "other_rows": "other rows"}
    table = "\n\n".join([
        "**In-scope accuracy** (the right intent, not handed over)\n\n" + results_markdown(
            summary, comparisons[comparisons["metric"] == "in-scope accuracy"], labels, ["k_label"], [],
            data.target, test_rows=in_scope_test, measure="in-scope accuracy"),
        "**Out-of-scope recall** (out-of-scope queries handed over)\n\n" + results_markdown(
            recall.merge(summary[["k_label", "arm", "target_unique", "other_rows"]], on=["k_label", "arm"]),
            comparisons[comparisons["metric"] == "out-of-scope recall"], labels, ["k_label"], [],
            data.target, test_rows=out_of_scope_test, measure="out-of-scope recall"),
        routing_balanced_section(cells, comparisons, data.target)])
    return finish(config, "routing", cells, summary, comparisons, design, table,
                  _reading(summary, recall, comparisons, cells, data, reference), figure)


# The outcomes a routing model is compared on: cells column -> name in the comparisons table
ROUTING_OUTCOMES = {"accuracy": "in-scope accuracy", "out_of_scope_recall": "out-of-scope recall",
                    "balanced": "balanced score"}
AUROC_NOTE = ("Out-of-scope AUROC is not compared: the cells keep each query's routing, not its confidence, so it "
              "cannot be recomputed without scoring the models again (they are not kept).")


def routing_comparisons(cells: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every arm against `reference` per k on each routing outcome (`ROUTING_OUTCOMES`), the balanced score the
    threshold maximises included; the `metric` column names the outcome."""
    return pd.concat([compare_arms(cells, reference, within=["k_label"], metric=column).assign(metric=name)
                      for column, name in ROUTING_OUTCOMES.items()], ignore_index=True)


def routing_balanced_section(cells: pd.DataFrame, comparisons: pd.DataFrame, target: str) -> str:
    """The balanced score's table (mean over replicates per k and arm, the paired comparison to the reference) and
    why out-of-scope AUROC is not beside it."""
    summary = summarize(cells, ["k_label", "k", "arm"], metric="balanced", also=["target_unique", "other_rows"])
    labels = {"k_label": "k", "arm": "arm", "target_unique": "unique desk queries", "other_rows": "other rows"}
    test_rows = int(cells["in_scope_rows"].iloc[0] + cells["out_of_scope_rows"].iloc[0])
    return ("**Balanced score** ((in-scope accuracy + out-of-scope recall) / 2, the score the threshold maximises "
            "on validation)\n\n" + results_markdown(
                summary, comparisons[comparisons["metric"] == ROUTING_OUTCOMES["balanced"]], labels, ["k_label"],
                [], target, test_rows=test_rows, measure="balanced score") + "\n\n" + AUROC_NOTE)


def _reading(summary: pd.DataFrame, recall: pd.DataFrame, comparisons: pd.DataFrame, cells: pd.DataFrame,
             data: RoutingData, reference: str) -> str:
    replicate_count = cells[["split_seed", "seed"]].drop_duplicates().shape[0]
    lines = [f"{data.target} desk, {len(data.classes)} intents; measured on {int(cells['in_scope_rows'].iloc[0])} "
             f"in-scope and {int(cells['out_of_scope_rows'].iloc[0])} out-of-scope test queries, the same for every "
             f"model, over {replicate_count} replicates. Every model hands a query over when its best intent's "
             "probability is below a threshold chosen on validation."]
    for k_label, at_k in summary.groupby("k_label", sort=False):
        lead = reference_line(at_k, at_k["arm"] == reference, "target-only in-scope accuracy")
        base = recall[(recall["k_label"] == k_label) & (recall["arm"] == reference)]
        lead += (f", out-of-scope recall {base['mean'].iloc[0]:.3f}" if len(base) else "")
        chosen = comparisons[comparisons["k_label"] == k_label]
        lines.append(f"k = {k_label}: {lead}. " + " ".join(
            f"{name[0].upper()}{name[1:]} — " + comparison_sentence(chosen[chosen["metric"] == name])
            for name in ROUTING_OUTCOMES.values()))
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per replicate: the intermediate encoder on the other desks' pool (when that arm runs), then per k every arm,
    the probe, and SetFit where `anchors.setfit_runs_at` the k; where the run folder holds stored cells, how many it
    reuses (`with_reuse`)."""
    params = routing_params(config)
    per_replicate = {"fine-tuned": len(params.k_values) * len(params.arms)}
    if "probe" in params.anchors:
        per_replicate["probe"] = len(params.k_values)
    if "setfit" in params.anchors:
        per_replicate["SetFit"] = sum(anchors.setfit_runs_at(k, params.setfit_max_k) for k in params.k_values)
    return with_reuse(plan_cells("routing", list(params.arms) + list(params.anchors), config, per_replicate,
                                 {"intermediate encoder": int("intermediate" in params.arms)}), config, planned_cells)


def planned_cells(config: Config) -> PlannedCells:
    """The study's cells and its intermediate encoders' on the run folder's prepared data (`routing_cells`)."""
    data = routing_data(config)
    planned = routing_cells(config, data)
    return PlannedCells(planned.cells + planned.encoders, data.test, data.names)


register_study("routing", RoutingParams, uses_split_seeds=True, plan=plan)
