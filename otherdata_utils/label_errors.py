"""Label errors in the other data: confident learning (cleanlab; Northcutt et al. 2021) on out-of-fold probabilities
of the frozen-encoder probe (or of models fine-tuned per fold), for the rows outside the target only.

Takes the cleaned training rows and the config's `other_label_errors` (keep | flag | drop); hands the mixing step the
rows to mix (unchanged, marked in `LABEL_ISSUE_COLUMN`, or without the flagged other rows) and a `LabelErrorReport`
(flagged rows per source and domain, examples, and precision/recall against known flips where the rows mark them).
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from . import modeling, runs, train
from .anchors import PROBE_CLASS_WEIGHT, FrozenEncoder
from .clean import take_rows
from .config import Config
from .io import atomic_write_json

LABEL_ISSUE_COLUMN = "label_issue"  # flag: True on the other rows confident learning flags
FLIP_COLUMN = "label_flipped"  # rows whose label was flipped on purpose (quality study's noise arms), where known
# prune_by_noise_rate (the paper's "PBNR", cleanlab's default): the confident joint estimates how many rows of each
# given class truly belong to each other class, and that many rows per off-diagonal cell are flagged, those with the
# largest margin for the other class first. It flags as many rows as the noise is estimated to hold, so recall
# follows the noise rate; `both` (also prune_by_class) flags fewer, favouring precision over recall, and
# `predicted_neq_given` (argmax ≠ label) ignores the per-class thresholds that keep an uneven probe honest.
FILTER_BY = "prune_by_noise_rate"
FOLDS = 5  # out-of-fold probabilities: each row scored by a head fitted on the other 4/5 (cleanlab needs held-out ones)
# The probe's regularisation for the out-of-fold head. Fixed, not chosen on validation: there is no clean yardstick
# among noisy other rows. On 300 Blitzer electronics and books reviews with 30% flips (MiniLM, max_length 128; the
# setting of tests/integration/test_label_errors_real_data.py) C = 10 recalled 60-63% of the flips over three fold
# seeds, C = 1 56-61%, C = 100 56-62%; precision was about 0.4 at each (0.3 is what flagging at random gives).
# `both` flagged the same rows as prune_by_noise_rate there.
PROBE_C = 10.0
EXAMPLES = 10  # flagged rows shown in the report, least self-confident first
_EXAMPLE_CHARS = 300


@dataclass(frozen=True)
class FlipScores:
    """Flags against the rows known to be flipped: precision = flagged and flipped / flagged, recall = / flipped."""

    flagged: int
    flipped: int
    true_positives: int
    precision: Optional[float]  # None when nothing is flagged
    recall: Optional[float]  # None when nothing is flipped


def flip_scores(flagged: Sequence[bool], flipped: Sequence[bool]) -> FlipScores:
    """Precision and recall of `flagged` rows against the truly `flipped` ones (the same rows, in the same order)."""
    flagged, flipped = np.asarray(flagged, dtype=bool), np.asarray(flipped, dtype=bool)
    if flagged.shape != flipped.shape:
        raise ValueError(f"flip_scores: {flagged.size} flags but {flipped.size} flip marks; give one of each per row")
    hits = int((flagged & flipped).sum())
    return FlipScores(flagged=int(flagged.sum()), flipped=int(flipped.sum()), true_positives=hits,
                      precision=hits / int(flagged.sum()) if flagged.any() else None,
                      recall=hits / int(flipped.sum()) if flipped.any() else None)


@dataclass
class LabelIssues:
    """Per examined row: flagged or not, the given label, the probe's suggestion and its probability of the given."""

    flagged: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    self_confidence: np.ndarray


def _classes_for_folds(labels: np.ndarray, folds: int) -> np.ndarray:
    """The classes among `labels`, once it is clear that stratified `folds`-fold splits can be made of them."""
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"other_label_errors needs other rows of at least two classes; the {len(labels)} rows "
                         f"examined hold only {classes.tolist()}")
    if counts.min() < folds:
        raise ValueError(f"other_label_errors: {folds}-fold out-of-fold probabilities need ≥ {folds} other rows per "
                         f"class; class {classes[counts.argmin()]} has {counts.min()}")
    return classes


def out_of_fold_probabilities(embeddings: np.ndarray, labels: Sequence[int], *, seed: int, folds: int = FOLDS,
                              c: float = PROBE_C) -> tuple[np.ndarray, np.ndarray]:
    """Stratified K-fold `cross_val_predict` of the probe head (logistic regression) on `embeddings`: each row's
    class probabilities from a head that never saw it. Returns them (a column per class present) and those classes."""
    labels = np.asarray(labels)
    classes = _classes_for_folds(labels, folds)
    head = LogisticRegression(C=c, class_weight=PROBE_CLASS_WEIGHT, max_iter=5000, random_state=seed)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(head, embeddings, labels, cv=split, method="predict_proba"), classes


def fine_tuned_out_of_fold_probabilities(texts: Sequence[str], labels: Sequence[int], config: Config,
                                         label_names: Sequence[str], *, work_dir: Path, folds: int = FOLDS
                                         ) -> tuple[np.ndarray, np.ndarray]:
    """Stratified K-fold fine-tuning of `config`'s model (its training parameters; no evaluation or checkpoints):
    each row's class probabilities from the model fitted on the other folds. Returns them (a column per class
    present, renormalised) and those classes. K models are trained: minutes on a CPU where the probe takes seconds."""
    labels = np.asarray(labels)
    classes = _classes_for_folds(labels, folds)
    fold_config = config.replace(eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                 early_stopping_patience=None, resume_from_checkpoint=None, report_to="none")
    rows = Dataset.from_dict({"text": list(texts), "label": labels.tolist()})
    probabilities = np.zeros((len(labels), len(label_names)))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for fold, (fitted, held_out) in enumerate(split.split(np.zeros(len(labels)), labels)):
        model, tokenizer = modeling.load_model_and_tokenizer(fold_config, label_names)
        tokenized = modeling.tokenize_splits(DatasetDict(train=rows.select(fitted), held_out=rows.select(held_out)),
                                             tokenizer, fold_config)
        train.train(fold_config, model, tokenizer, tokenized, output_dir=work_dir / f"fold-{fold}",
                    label_names=label_names)
        probabilities[held_out] = train.predict(model, tokenized["held_out"], tokenizer, fold_config).probabilities
    present = probabilities[:, classes]
    return present / present.sum(axis=1, keepdims=True), classes


def find_issues(embeddings: np.ndarray, labels: Sequence[int], *, seed: int, folds: int = FOLDS,
                c: float = PROBE_C) -> LabelIssues:
    """Confident learning (`cleanlab.filter.find_label_issues`, `FILTER_BY`) on the probe's out-of-fold
    probabilities of `embeddings` (one row per label)."""
    probabilities, classes = out_of_fold_probabilities(embeddings, labels, seed=seed, folds=folds, c=c)
    return issues_from_probabilities(labels, probabilities, classes)


def issues_from_probabilities(labels: Sequence[int], probabilities: np.ndarray, classes: np.ndarray) -> LabelIssues:
    """Confident learning on out-of-fold `probabilities` (a column per one of `classes`, every label among them)."""
    # cleanlab imports only here: a mix that keeps every row (the default) never needs it
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels)
    # cleanlab wants labels 0..K-1 matching the columns: classes absent from the other rows get no column
    position = np.searchsorted(classes, labels)
    flagged = find_label_issues(position, probabilities, filter_by=FILTER_BY, n_jobs=1)
    return LabelIssues(flagged=np.asarray(flagged, dtype=bool), given=labels,
                       suggested=classes[probabilities.argmax(axis=1)],
                       self_confidence=probabilities[np.arange(len(labels)), position])


@dataclass
class LabelErrorReport:
    """What confident learning flagged among the other rows, and what the mixing step did with them."""

    mode: str
    label_error_model: str  # probe (frozen embeddings + logistic regression) or fine_tuned
    model: str  # the encoder the probe read, or the model fine-tuned per fold
    filter_by: str
    folds: int
    seed: int
    target: Optional[str]
    rows_examined: int
    rows_flagged: int
    by_group: dict[str, list[dict[str, Any]]]  # "source"/"domain" -> [{group, rows, flagged, share}]
    examples: list[dict[str, Any]]
    flips: Optional[FlipScores] = None  # where the rows mark their known flips (`FLIP_COLUMN`)
    rows_dropped: int = 0

    def to_frame(self, by: str = "domain") -> pd.DataFrame:
        """Flagged rows per value of `by` ("source" or "domain"): rows examined, flagged, share flagged."""
        if by not in self.by_group:
            raise KeyError(f"the label-error report counts rows by {sorted(self.by_group)}, not {by!r}")
        return pd.DataFrame(self.by_group[by])

    def examples_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.examples)

    def summary(self) -> str:
        share = self.rows_flagged / self.rows_examined if self.rows_examined else 0.0
        action = {"flag": "kept and marked in the training set", "drop": f"dropped ({self.rows_dropped:,} rows)",
                  "keep": "kept"}[self.mode]
        how = "probe on" if self.label_error_model == "probe" else "fine-tuned"
        parts = [f"Confident learning ({self.filter_by}, {self.folds}-fold {how} {self.model}) flagged "
                 f"{self.rows_flagged:,} of {self.rows_examined:,} other rows ({share:.1%}) as likely mislabelled; "
                 f"{action}. The target's rows were not examined."]
        if self.flips is not None and self.flips.flipped:
            precision = "n/a" if self.flips.precision is None else f"{self.flips.precision:.3f}"
            parts.append(f"Against the {self.flips.flipped:,} known flipped labels: precision {precision}, "
                         f"recall {self.flips.recall:.3f}.")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _counts(values: list[Any], flagged: np.ndarray) -> list[dict[str, Any]]:
    frame = pd.DataFrame({"group": values, "flagged": flagged})
    grouped = frame.groupby("group", sort=True)["flagged"].agg(["size", "sum"])
    return [{"group": str(group), "rows": int(row["size"]), "flagged": int(row["sum"]),
             "share": round(float(row["sum"]) / float(row["size"]), 4)} for group, row in grouped.iterrows()]


def _label_name(rows: Dataset, label: int) -> str:
    feature = rows.features["label"]
    return feature.int2str(int(label)) if isinstance(feature, ClassLabel) else str(label)


def other_row_positions(rows: Dataset, target: Optional[str], column: str) -> list[int]:
    """The rows outside the target (`column` ≠ `target`): the only ones examined or dropped."""
    if target is None:
        raise ValueError("other_label_errors examines the other data, the rows outside target_domain: set "
                         "target_domain (or other_label_errors: keep)")
    if column not in rows.column_names:
        raise ValueError(f"other_label_errors: mix_by {column!r} is not a column of the training rows "
                         f"({rows.column_names})")
    return [row for row, group in enumerate(rows.with_format("arrow")[:].column(column).to_pylist())
            if group != target]


def examine_other_rows(rows: Dataset, encoder: Optional[FrozenEncoder], *, target: Optional[str],
                       column: str = "domain", seed: int, mode: str = "flag", folds: int = FOLDS,
                       fine_tune: Optional[Config] = None) -> tuple[list[int], LabelIssues, LabelErrorReport]:
    """Confident learning on the rows outside the target: their positions in `rows`, the issues found (in that
    order) and the report (by source and domain, examples, and flip precision/recall where `FLIP_COLUMN` is there).
    The probabilities are the probe's on `encoder`, or with `fine_tune` those of models fine-tuned as it says."""
    others = other_row_positions(rows, target, column)
    if not others:
        raise ValueError(f"other_label_errors: every training row is in target {column} {target!r}; there is no "
                         "other data to examine")
    table = rows.with_format("arrow")[others]
    texts, labels = table.column("text").to_pylist(), np.asarray(table.column("label").to_pylist())
    if fine_tune is None:
        issues, model = find_issues(encoder.embed(texts), labels, seed=seed, folds=folds), encoder.model_path
    else:
        runs.run_folder(fine_tune).work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="label-errors-", dir=runs.run_folder(fine_tune).work) as work:
            probabilities, classes = fine_tuned_out_of_fold_probabilities(
                texts, labels, fine_tune, rows.features["label"].names, work_dir=Path(work), folds=folds)
        issues, model = issues_from_probabilities(labels, probabilities, classes), fine_tune.model_name_or_path
    by_group = {name: _counts(table.column(name).to_pylist(), issues.flagged)
                for name in ("source", "domain") if name in table.column_names}
    order = sorted(np.flatnonzero(issues.flagged), key=lambda i: issues.self_confidence[i])[:EXAMPLES]
    groups = table.column(column).to_pylist()
    examples = [{column: groups[i], "text": texts[i][:_EXAMPLE_CHARS], "given_label": _label_name(rows, labels[i]),
                 "suggested_label": _label_name(rows, issues.suggested[i]),
                 "self_confidence": round(float(issues.self_confidence[i]), 4)} for i in order]
    flips = (flip_scores(issues.flagged, table.column(FLIP_COLUMN).to_pylist())
             if FLIP_COLUMN in table.column_names else None)
    report = LabelErrorReport(mode=mode, label_error_model="probe" if fine_tune is None else "fine_tuned",
                              model=model, filter_by=FILTER_BY, folds=folds, seed=seed,
                              target=target, rows_examined=len(others), rows_flagged=int(issues.flagged.sum()),
                              by_group=by_group, examples=examples, flips=flips)
    return others, issues, report


def flag_known_flips(rows: Dataset, flipped: Sequence[bool], encoder: FrozenEncoder, *, seed: int,
                     folds: int = FOLDS) -> tuple[np.ndarray, FlipScores]:
    """For a cleaning arm: every row of `rows` (other data, no target among them) examined, with `flipped` the rows
    whose labels were flipped on purpose. Returns the flags (one per row) and their precision/recall."""
    if len(flipped) != len(rows):
        raise ValueError(f"flag_known_flips: {len(flipped)} flip marks for {len(rows)} rows; give one per row")
    issues = find_issues(encoder.embed(list(rows["text"])), rows["label"], seed=seed, folds=folds)
    return issues.flagged, flip_scores(issues.flagged, flipped)


def with_flags(rows: Dataset, flagged: Sequence[bool]) -> Dataset:
    """`rows` with a boolean `LABEL_ISSUE_COLUMN` appended (one value per row)."""
    table = rows.with_format("arrow")[:].append_column(LABEL_ISSUE_COLUMN, pa.array(list(flagged), type=pa.bool_()))
    info = rows.info.copy()
    info.features = Features({**rows.features, LABEL_ISSUE_COLUMN: Value("bool")})
    # Like clean.take_rows: a fingerprint derived from the parent's and the flags, not a hash of the whole table
    digest = hashlib.blake2b(f"{rows._fingerprint}|{LABEL_ISSUE_COLUMN}".encode(), digest_size=8)
    digest.update(np.packbits(np.asarray(flagged, dtype=bool)).tobytes())
    return Dataset(table, info=info, split=rows.split, fingerprint=digest.hexdigest())


def handle_other_label_errors(rows: Dataset, config: Config, *, encoder: Optional[FrozenEncoder] = None
                              ) -> tuple[Dataset, Optional[LabelErrorReport]]:
    """The rows to mix under `config.other_label_errors`: keep returns `rows` itself and no report; flag appends
    `LABEL_ISSUE_COLUMN` (the target's rows False); drop removes the flagged other rows. The report is written to
    the run folder (`label_error_report`). `config.label_error_model` picks the probabilities: the probe on `encoder`
    (by default the config's model, frozen) or the config's model fine-tuned per fold."""
    mode = config.other_label_errors
    if mode == "keep":
        return rows, None
    fine_tune = config if config.label_error_model == "fine_tuned" else None
    if encoder is None and fine_tune is None:
        encoder = FrozenEncoder(modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir()),
                                config.max_seq_length, quiet=runs.is_quiet(config))
    others, issues, report = examine_other_rows(rows, encoder, target=config.target_domain, column=config.mix_by,
                                                seed=config.seed, mode=mode, fine_tune=fine_tune)
    flagged_rows = {others[i] for i in np.flatnonzero(issues.flagged)}
    if mode == "flag":
        out = with_flags(rows, [row in flagged_rows for row in range(len(rows))])
    else:
        kept = [row for row in range(len(rows)) if row not in flagged_rows]
        out = take_rows(rows, kept, f"drop label issues {FILTER_BY} {config.seed}")
        report.rows_dropped = len(flagged_rows)
    atomic_write_json(runs.run_folder(config).label_error_report, report.to_dict())
    return out, report
