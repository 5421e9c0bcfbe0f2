"""The study's steps as the notebooks call them: each reads what it needs from the run folder and writes its results.

A notebook run alone re-creates what an earlier step would have left (load, else build), and rebuilds an output made
with other parameters (`step_records`, recorded beside it); aggregation never retrains.
"""
from __future__ import annotations

import platform
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import accelerate
import datasets
import numpy as np
import pandas as pd
import torch
import transformers
from accelerate import PartialState
from datasets import Dataset, DatasetDict, load_from_disk
from datasets.utils import logging as datasets_logging
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import pipeline as hf_pipeline

from . import (adapters, augment, clean, data, label_errors, launcher, metrics, mix, model_card, modeling, plots,
               pretrain, routing, selection, train)
from .config import Config
from .constraints import constraints_record
from .execution import threads_per_cell
from .io import atomic_dir, atomic_write_json, read_json
from .runs import run_folder
from .step_records import STEP_PARAMS, forget_step, record_step, reusable, step_params, training_precision

# --- run metadata -------------------------------------------------------------------------------------------------

def environment_info() -> dict[str, Any]:
    """Library versions and machine facts, and the constraints file installed with (its sha256, and the installed
    versions that differ from it), so a run folder says what produced it."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "constraints": constraints_record(),
    }


def record_environment(config: Config) -> dict[str, Any]:
    """environment.json: `environment_info`, the threads study cells pin, and the precision training resolves to
    on this host with its reason (`precision`: requested, mode, device, reason)."""
    info = {**environment_info(), "threads_per_cell": threads_per_cell(config.execution),
            "precision": training_precision(config).as_record()}
    atomic_write_json(run_folder(config).environment, info)
    return info


def update_metrics(config: Config, section: str, values: Any) -> dict[str, Any]:
    """Set one top-level section of metrics.json, keeping the sections other steps wrote."""
    path = run_folder(config).metrics
    recorded = read_json(path) if path.is_file() else {}
    recorded[section] = values
    atomic_write_json(path, recorded)
    return recorded


def remove_metrics(config: Config, section: str) -> None:
    """Drop one top-level section of metrics.json, if it is there."""
    path = run_folder(config).metrics
    sections = read_json(path) if path.is_file() else {}
    if sections.pop(section, None) is not None:
        atomic_write_json(path, sections)


def update_study(config: Config, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Record one study's summary under metrics.json "studies", beside the other studies of the run."""
    path = run_folder(config).metrics
    studies = (read_json(path) if path.is_file() else {}).get("studies", {})
    return update_metrics(config, "studies", {**studies, name: values})


def save_dataset_atomically(dataset: Dataset | DatasetDict, target: Path) -> Path:
    """save_to_disk into a temporary sibling folder, then swap it in: never half a data set on disk."""
    bars_were_on = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()  # a sub-second save needs no progress bar in every notebook
    try:
        # datasets writes no shard for an empty split and then cannot load it back: an empty one gets one shard
        parts = dataset if isinstance(dataset, DatasetDict) else {None: dataset}
        empty = {split: 1 for split, part in parts.items() if len(part) == 0}
        with atomic_dir(target) as tmp:
            dataset.save_to_disk(str(tmp), num_shards=empty.get(None) if None in parts else empty)
    finally:
        if bars_were_on:
            datasets_logging.enable_progress_bar()
    return target


# --- 01 data: sources, cleaning, leakage -------------------------------------------------------------------------

@dataclass
class PreparedData:
    dataset: DatasetDict
    cleaning: Any  # clean.CleaningReport
    fingerprint: dict[str, Any]


def prepare_data(config: Config) -> PreparedData:
    """Load every source, clean it, find leakage; save the clean DatasetDict and the reports in the run folder."""
    paths = run_folder(config)
    forget_step(config, "data")
    raw = data.load_data(config)
    cleaned, cleaning = clean.clean(raw, config)
    leaked = len(cleaning.leakage.leaked_ids("train"))
    if leaked:
        action = "removed from train" if config.remove_leakage else "kept in train (remove_leakage: false)"
        warnings.warn(f"leakage: {leaked} training rows share a text with validation or test; {action}. "
                      f"{cleaning.leakage.summary()}", stacklevel=2)
    save_dataset_atomically(cleaned, paths.clean_data)
    fingerprint = {"raw": data.fingerprint(raw), "clean": data.fingerprint(cleaned),
                   "copies": data.copies_read(config)}  # which copy of each named source was read
    atomic_write_json(paths.data_fingerprint, fingerprint)
    # leakage in the sources as distributed (before de-duplication), beside what is left after cleaning
    as_distributed = clean.find_leakage(raw, near=config.near_dedupe)
    atomic_write_json(paths.cleaning_report, {**cleaning.to_dict(), "summary": cleaning.summary(),
                                              "leakage_as_distributed": as_distributed.to_dict()})
    record_step(config, "data")
    return PreparedData(dataset=cleaned, cleaning=cleaning, fingerprint=fingerprint)


def load_prepared(config: Config) -> DatasetDict:
    """The cleaned splits 01_data left in the run folder, prepared (again) unless made with these parameters."""
    path = run_folder(config).clean_data
    if reusable(config, "data", made=path.is_dir()):
        return load_from_disk(str(path))
    return prepare_data(config).dataset


# --- 02 mixing: the training set ------------------------------------------------------------------------------------

@dataclass
class TrainingSet:
    train: Dataset
    mix: Any  # mix.MixReport
    augmentation: Optional[Any] = None  # augment.AugmentReport
    selection: Optional[Any] = None  # selection.Selection; None under other_selection all
    label_errors: Optional[Any] = None  # label_errors.LabelErrorReport (other_label_errors flag or drop)


def build_training_set(config: Config) -> TrainingSet:
    """Examine the other rows' labels (`other_label_errors`), select other rows (`other_selection`), mix them into
    the target (few-shot, strategy, budget), augment if asked; save it and its reports."""
    paths = run_folder(config)
    prepared = load_prepared(config)
    forget_step(config, "mix")
    paths.label_error_report.unlink(missing_ok=True)  # a report left by an earlier flag or drop run is not this one's
    # label errors first: a flagged row that is dropped is not a candidate for selection
    cleaned, label_error_report = label_errors.handle_other_label_errors(prepared["train"], config)
    candidates, chosen = selection.select_for_config(cleaned, config)
    selection.write_selection_report(chosen, paths)
    train, mix_report = mix.mix(candidates, config)
    atomic_write_json(paths.mix_report, {**mix_report.to_dict(), "summary": mix_report.summary()})
    augmentation = None
    if config.augmentation != "none":
        train, augmentation = augment.augment(train, config)
        atomic_write_json(paths.augmentation_report, augmentation.to_dict())
    save_dataset_atomically(train, paths.train_set)
    record_step(config, "mix")
    return TrainingSet(train=train, mix=mix_report, augmentation=augmentation, selection=chosen,
                       label_errors=label_error_report)


def load_training_set(config: Config) -> Dataset:
    """The training set 02_mixing left in the run folder, mixed (again) unless made with these parameters."""
    path = run_folder(config).train_set
    if reusable(config, "mix", made=path.is_dir()):
        return load_from_disk(str(path))
    return build_training_set(config).train


# --- 03 fine-tuning ---------------------------------------------------------------------------------------------------

def adapt_encoder(config: Config, prepared: DatasetDict) -> Optional[Path]:
    """Continued MLM pretraining before fine-tuning (`pretrain_steps` > 0) into the run folder's pretraining folder.

    Its record, held-out MLM loss before and after included, is metrics.json "pretraining". Returns the adapted
    encoder's folder, or None when `pretrain_steps` is 0. One the run folder holds already, made with the same
    `STEP_PARAMS["pretraining"]` and training data, is reused: a resumed or re-run fine-tuning starts from the very
    encoder it started from.
    """
    if config.pretrain_steps == 0:
        return None
    paths = run_folder(config)
    inputs = {"params": {key: config.to_params()[key] for key in STEP_PARAMS["pretraining"]},
              "train_data": data.fingerprint(DatasetDict(train=prepared["train"]))["train"]}
    recorded = (read_json(paths.metrics) if paths.metrics.is_file() else {}).get("pretraining") or {}
    made = (paths.pretraining / "config.json").is_file()
    if made and all(recorded.get(key) == value for key, value in inputs.items()):
        return paths.pretraining
    # Forget the old record before the folder is replaced: a run killed in between then pretrains again rather
    # than take the new encoder for the one recorded.
    remove_metrics(config, "pretraining")
    result = pretrain.pretrain_from_config(config, prepared, output_dir=paths.pretraining)
    update_metrics(config, "pretraining", {
        **inputs,
        "base_model": config.model_name_or_path,
        "encoder": result.output_dir,
        "steps": result.steps,
        "examples_seen": result.examples_seen,
        "train_texts": result.train_texts,
        "heldout_texts": result.heldout_texts,
        "heldout_loss_before": result.heldout_loss_before,
        "heldout_loss_after": result.heldout_loss_after,
        "heldout_perplexity_before": result.heldout_perplexity_before,
        "heldout_perplexity_after": result.heldout_perplexity_after,
        "head_initialised_fresh": result.head_initialised_fresh,
        "train_runtime_s": result.seconds,
        "train_examples_per_second": result.examples_per_second,
        "loss_history": result.loss_history,
    })
    return result.output_dir


def intermediate_rows(config: Config, target: DatasetDict) -> Optional[tuple[DatasetDict, set[str]]]:
    """The `intermediate` sources' rows cleaned as 01_data cleans the target's, and the ids of their training texts
    that also occur in the `target`'s validation or test rows (dropped with `remove_leakage`); None without any."""
    raw = data.load_intermediate_data(config)
    if raw is None:
        return None
    cleaned, _ = clean.clean(raw, config)
    # the target's yardstick must not be seen in training, not even with another task's labels
    leaked = clean.find_leakage(DatasetDict(train=cleaned["train"], validation=target["validation"],
                                            test=target["test"]), near=config.near_dedupe).leaked_ids("train")
    if config.remove_leakage and leaked:
        ids = cleaned["train"]["id"][:]
        cleaned["train"] = clean.take_rows(cleaned["train"], [row for row, id_ in enumerate(ids) if id_ not in leaked],
                                           "intermediate leakage")
    return cleaned, leaked


def train_intermediate(config: Config, start: str, target: DatasetDict) -> Optional[Path]:
    """Intermediate-task training (STILTs, Phang et al. 2018) of the `intermediate` sources, from encoder `start`.

    Their rows, cleaned as 01_data cleans the target's, are fine-tuned on with their own classes and head; with
    `remove_leakage`, training texts that also occur in the `target`'s validation or test rows are dropped first.
    The encoder is saved without that head into the run folder's intermediate folder, so the target's fine-tuning
    starts from it with a fresh head. Its record is metrics.json "intermediate" (started_from, data, scores); one
    the run folder holds, made from the same inputs, is reused. Returns None when no source is intermediate.
    """
    loaded = intermediate_rows(config, target)
    if loaded is None:
        return None
    cleaned, leaked = loaded
    paths = run_folder(config)
    names = data.label_names(cleaned)
    inputs = {"params": step_params(config, "intermediate"), "started_from": start,
              "train_data": data.fingerprint(DatasetDict(train=cleaned["train"]))["train"]}
    recorded = (read_json(paths.metrics) if paths.metrics.is_file() else {}).get("intermediate") or {}
    if (paths.intermediate / "config.json").is_file() and all(recorded.get(k) == v for k, v in inputs.items()):
        return paths.intermediate
    remove_metrics(config, "intermediate")  # before the folder is replaced: a killed run then trains it again
    # the target's checkpoint folder is not this stage's: it resumes only from its own latest ("auto")
    stage = config.replace(model_name_or_path=start,
                           resume_from_checkpoint="auto" if config.resume_from_checkpoint else None)
    result = intermediate_encoder(stage, DatasetDict(train=cleaned["train"], validation=cleaned["validation"]),
                                  names, training_dir=paths.intermediate_training, encoder_dir=paths.intermediate)
    atomic_write_json(paths.intermediate_training / "history.json", result.history)
    update_metrics(config, "intermediate", {
        **inputs, "encoder": str(paths.intermediate), "label_names": names,
        "leaked_into_target_evaluation": len(leaked), "leakage_removed": config.remove_leakage,
        "sources": [spec.label for spec in config.source_specs if spec.intermediate],
        **{key: value for key, value in asdict(result).items() if key != "history"}})
    return paths.intermediate


def intermediate_encoder(stage: Config, rows: DatasetDict, names: list[str], *, training_dir: Path,
                         encoder_dir: Path) -> train.TrainResult:
    """Fine-tune `stage.model_name_or_path` on `rows` (train, validation) with their own classes and a new head, and
    save the encoder without that head into `encoder_dir`: a later fine-tuning starts from it with a fresh head."""
    model, tokenizer = modeling.load_model_and_tokenizer(stage, names)
    tokenized = modeling.tokenize_splits(rows, tokenizer, stage)
    result = train.train(stage, model, tokenizer, tokenized, output_dir=training_dir, label_names=names)
    modeling.save_model(adapters.plain_model(model).base_model, tokenizer, encoder_dir)
    return result


def finetune(config: Config, *, stop_after_steps: Optional[int] = None) -> train.TrainResult:
    """Tokenise, build the model (seeded), train with validation-driven choices, save the chosen model.

    With `pretrain_steps` > 0 the encoder is first adapted by continued MLM pretraining (`adapt_encoder`); with
    `intermediate` sources it is then fine-tuned on them (`train_intermediate`). Fine-tuning starts from the last
    of these encoders with a new classification head; metrics.json "train" records where it started.
    With `num_processes` > 1 the fine-tuning runs in that many processes (`launcher`: one per GPU, else CPU
    processes on gloo); the main one writes the model and the records, and the result is read back from those.
    """
    if config.num_processes > 1:
        launcher.check_launchable(config)  # before anything is trained: a refusal costs nothing
    prepared = load_prepared(config)
    names = trained_classes(config, data.label_names(prepared))
    splits = in_scope_rows(DatasetDict(train=load_training_set(config), validation=prepared["validation"]), names)
    forget_step(config, "finetune")
    forget_step(config, "evaluate")  # its scores and predictions are of the model this one replaces
    encoder = adapt_encoder(config, prepared)
    encoder = train_intermediate(config, str(encoder or config.model_name_or_path), prepared) or encoder
    start = config if encoder is None else config.replace(model_name_or_path=str(encoder))
    if config.num_processes == 1:
        result = train_and_save(config, start, splits, names, stop_after_steps)
    else:
        print(launcher.global_batch_line(config), flush=True)
        remove_metrics(config, "train")  # what is read back below is then this run's, never an earlier one's
        launcher.launch(_train_and_save_in_launched_process, (config, start, splits, names, stop_after_steps),
                        config)
        result = recorded_training(config)
    # stopped by stop_after_steps before the end, the model is partly trained: unrecorded, no later step takes it
    if stop_after_steps is None or result.global_step < stop_after_steps:
        record_step(config, "finetune")
    return result


def train_and_save(config: Config, start: Config, splits: DatasetDict, names: list[str],
                   stop_after_steps: Optional[int]) -> train.TrainResult:
    """Build the classifier from `start`'s model (seeded), train it on `splits`; the main process saves the model,
    its inference settings, the history, metrics.json "train" and the training curves. Every process returns the
    result (under several processes each holds the same weights and history)."""
    paths = run_folder(config)
    model, tokenizer = modeling.load_model_and_tokenizer(start, names)
    tokenized = modeling.tokenize_splits(splits, tokenizer, config)
    result = train.train(config, model, tokenizer, tokenized, output_dir=paths.training, label_names=names,
                         stop_after_steps=stop_after_steps)
    # a PEFT-wrapped model is saved merged, as a plain transformers folder that pipeline() and serve load
    modeling.save_model(adapters.plain_model(model), tokenizer, paths.model)  # the main process writes it
    if PartialState().is_main_process:
        # predict and serve read these back to cut long texts as training did; after save_model, which swaps the
        # folder in
        model_card.write_inference_settings(paths.model, config, training_precision=training_precision(config))
        summary = {key: value for key, value in asdict(result).items() if key != "history"}
        atomic_write_json(paths.history, result.history)
        update_metrics(config, "train", {**summary, "started_from": start.model_name_or_path})
        plots.plot_training_curves(result.history, path=paths.figure("training_curves"))
    return result


def _train_and_save_in_launched_process(config: Config, start: Config, splits: DatasetDict, names: list[str],
                                        stop_after_steps: Optional[int]) -> None:
    """One launched process's work (`launcher.launch`; module level, as its processes need)."""
    train_and_save(launcher.start_process(config), start, splits, names, stop_after_steps)


def recorded_training(config: Config) -> train.TrainResult:
    """The `train.TrainResult` the main process recorded in the run folder (metrics.json "train", the history)."""
    paths = run_folder(config)
    summary = dict(read_json(paths.metrics)["train"])
    del summary["started_from"]
    best_model_dir = summary.pop("best_model_dir")
    return train.TrainResult(history=read_json(paths.history), **summary,
                             best_model_dir=Path(best_model_dir) if best_model_dir else None)


def trained_classes(config: Config, names: list[str]) -> list[str]:
    """The classes a model is trained on: the data's, less the out-of-scope class a routing run hands over."""
    return names if config.out_of_scope_class is None else routing.in_scope_classes(names, config.out_of_scope_class)


def in_scope_rows(splits: DatasetDict, names: list[str]) -> DatasetDict:
    """Each split's rows of the `names` classes (ids below len(names)): out-of-scope rows are never trained on."""
    def kept(rows: Dataset) -> Dataset:
        labels = rows["label"][:]
        if all(label < len(names) for label in labels):
            return rows
        return rows.select([row for row, label in enumerate(labels) if label < len(names)])

    return DatasetDict({split: kept(rows) for split, rows in splits.items()})


# --- 04 evaluation ----------------------------------------------------------------------------------------------------

def load_trained_model(config: Config):
    """The fine-tuned model and tokenizer from the run folder, trained (again) unless made with these parameters."""
    model_dir = run_folder(config).model
    if not reusable(config, "finetune", made=(model_dir / "config.json").is_file()):
        finetune(config)
    return AutoModelForSequenceClassification.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def evaluate_splits(config: Config, splits: tuple[str, ...] = ("validation", "test")) -> dict[str, Any]:
    """Per split: metrics, classification report, confusion matrix (counts and row shares), per-domain table,
    calibration (ECE, 15 bins), accuracy by length quartile; saved predictions and a figure for each view.

    A routing run (`out_of_scope_class`) first chooses the handover threshold on validation (`routing`), stores it
    beside the model for serving, and scores the routed predictions (handovers count as the out-of-scope class),
    with in-scope accuracy and out-of-scope recall per split under "routing".
    """
    paths = run_folder(config)
    prepared = load_prepared(config)
    names = data.label_names(prepared)
    model, tokenizer = load_trained_model(config)
    forget_step(config, "evaluate")
    routed = config.out_of_scope_class is not None
    needed = tuple(dict.fromkeys(("validation", *splits))) if routed else splits
    tokenized = modeling.tokenize_splits(DatasetDict({s: prepared[s] for s in needed}), tokenizer, config)
    # a routing run predicts each split once: validation's predictions choose the threshold and are scored too
    predicted = {split: train.predict(model, tokenized[split], tokenizer, config) for split in needed} if routed else {}
    threshold = choose_handover(config, predicted["validation"]) if routed else None
    results: dict[str, Any] = {}
    for split in splits:
        if routed:
            predictions, routing_record = routed_predictions(predicted[split], threshold)
            scores = metrics.compute_classification_metrics(predictions.labels, predictions.predicted, names)
            scores["routing"] = routing_record
        else:
            scores, predictions = train.evaluate(model, tokenized[split], tokenizer, config, names)
        rows = prepared[split]
        per_domain = metrics.per_domain_metrics(predictions.labels, predictions.predicted, rows["domain"], names)
        confusion = metrics.confusion_matrix(predictions.labels, predictions.predicted, len(names))
        correct = predictions.predicted == predictions.labels
        # The whole text with its special tokens, before truncation: a count over max_seq_length was cut.
        token_counts = [len(ids) for ids in tokenizer(rows["text"][:], return_attention_mask=False,
                                                      return_token_type_ids=False, verbose=False)["input_ids"]]
        scores = {
            **scores,
            "per_domain": per_domain["per_domain"],
            "worst_domain": per_domain["worst_domain"],
            "domain_gap": per_domain["gap"],
            "classification_report": metrics.classification_report_text(predictions.labels, predictions.predicted,
                                                                         names),
            "confusion_matrix": confusion,
            "confusion_matrix_normalized": metrics.row_normalized_confusion(confusion),
            # a handover's row has no class probability (NaN): its confidence is the best in-scope class's
            "calibration": metrics.calibration_bins(np.nanmax(predictions.probabilities, axis=1), correct,
                                                    n_bins=15),
            "accuracy_by_length": metrics.accuracy_by_length(token_counts, correct, max_length=config.max_seq_length),
            "label_names": names,
        }
        metrics.save_predictions(
            paths.split_predictions(split), ids=rows["id"], texts=rows["text"], domains=rows["domain"],
            labels=predictions.labels, predictions=predictions.predicted, probabilities=predictions.probabilities,
            label_names=names,
        )
        plots.close(
            plots.plot_confusion_matrices(confusion, names, path=paths.split_figure("confusion", split)),
            plots.plot_per_domain(per_domain, path=paths.split_figure("per_domain", split)),
            plots.plot_reliability(scores["calibration"], path=paths.split_figure("calibration", split)),
            plots.plot_accuracy_by_length(scores["accuracy_by_length"], path=paths.split_figure("length", split)),
        )
        update_metrics(config, split, scores)
        results[split] = scores
    record_step(config, "evaluate")
    return results


def choose_handover(config: Config, predictions: train.Predictions) -> float:
    """The routing threshold chosen on the validation rows' predictions (`routing.choose_threshold`), recorded in
    metrics.json "routing" and stored beside the model, where predict and serve read it."""
    threshold, scores = routing.choose_threshold(predictions.probabilities, predictions.labels)
    model = run_folder(config).model
    trained = model_card.read_inference_settings(model)  # keeps the precision the model was trained in
    model_card.write_inference_settings(model, config, handover_threshold=threshold,
                                        training_precision=trained.training_precision if trained else None)
    update_metrics(config, "routing", {"threshold": threshold, "chosen_on": "validation",
                                       "objective": "mean of in-scope accuracy and out-of-scope recall",
                                       "out_of_scope_class": config.out_of_scope_class,
                                       "validation": asdict(scores)})
    return threshold


def routed_predictions(predictions: train.Predictions, threshold: float):
    """A split's predictions with texts below `threshold` handed over (predicted as the out-of-scope class, the
    class after the trained ones; their probability column is NaN: the model has no such class), and the split's
    `routing.RoutingScores` as a dict."""
    probabilities = predictions.probabilities
    handed = routing.route(probabilities, threshold)
    padded = np.hstack([probabilities, np.full((len(probabilities), 1), np.nan)])
    scores = routing.routing_scores(predictions.labels, handed, probabilities.shape[1])
    return replace(predictions, predicted=handed, probabilities=padded), {"threshold": threshold, **asdict(scores)}


# --- 06 deployment ----------------------------------------------------------------------------------------------------

@dataclass
class Deployment:
    model_dir: Path
    checked: int  # test texts re-predicted through transformers.pipeline()
    agreement: float  # share of them where pipeline() agrees with the evaluation's prediction
    examples: Any  # pandas.DataFrame of a few texts with both predictions


def base_model_name(config: Config) -> str:
    """What the model card names as the base model ('default' is the packaged all-MiniLM-L6-v2)."""
    if config.model_name_or_path == modeling.DEFAULT_MODEL:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return config.model_name_or_path


def _intended_use(config: Config, test: dict[str, Any]) -> str:
    run = f"a research artefact of the otherdata run '{config.run_name}'."
    if config.out_of_scope_class is None:
        return (f"Sentiment classification ({', '.join(test['label_names'])}) of English text like the training "
                f"domains; {run}")
    routed = test["routing"]
    return (f"Routing English queries to one of {len(test['label_names']) - 1} intents, or handing them over to a "
            f"person when the best intent's probability is below {routed['threshold']:.3f} (chosen on validation; "
            f"stored in {model_card.INFERENCE_NAME}): on the test rows {routed['in_scope_accuracy']:.3f} in-scope "
            f"accuracy, {routed['out_of_scope_recall']:.3f} out-of-scope recall; {run}")


def deploy(config: Config, *, check_rows: int = 200) -> Deployment:
    """Write the model card, reload the folder with transformers.pipeline() and compare with the evaluation."""
    paths = run_folder(config)
    recorded = read_json(paths.metrics) if paths.metrics.is_file() else {}
    if not reusable(config, "evaluate", made="test" in recorded and paths.split_predictions("test").is_file()):
        evaluate_splits(config)
        recorded = read_json(paths.metrics)
    test = recorded["test"]
    mix_path = paths.mix_report
    model_card.write_model_card(
        paths.model,
        base_model=base_model_name(config),
        sources=[spec.label for spec in config.source_specs],
        mix={group["group"]: {"rows": group["achieved_rows"], "share": round(group["achieved_share"], 4)}
             for group in read_json(mix_path)["groups"]} if mix_path.is_file() else None,
        params={key: value for key, value in config.to_params().items()
                if key not in {"data_dir", "output_dir", "cache_dir", "runs_dir", "quiet"}},
        test_metrics={key: test[key] for key in ("accuracy", "macro_f1", "weighted_f1", "n")},
        per_domain=test["per_domain"],
        intended_use=_intended_use(config, test),
        limitations=[
            f"Trained on {', '.join(sorted(test['per_domain']))}; expect lower accuracy on other domains "
            f"(worst test domain here: {test['worst_domain']}).",
            f"Inputs longer than {config.max_seq_length} tokens are truncated ({config.truncation}).",
            "The packaged base model has an English uncased vocabulary; other languages are out of scope.",
        ],
    )
    expected = metrics.load_predictions(paths.split_predictions("test"))
    # pipeline() knows no handover threshold: it is compared on the texts the evaluation answered with a class
    expected = expected[expected["prediction"] != config.out_of_scope_class].head(check_rows)
    classifier = hf_pipeline("text-classification", model=str(paths.model), tokenizer=str(paths.model),
                             device=-1)
    # pipeline() truncates from the end (head); other strategies can disagree on texts longer than the limit.
    # (a routing model that handed every test text over leaves nothing to compare: agreement is then NaN)
    outputs = classifier(expected["text"].tolist(), truncation=True, max_length=config.max_seq_length,
                         batch_size=config.per_device_eval_batch_size) if len(expected) else []
    reloaded = [output["label"] for output in outputs]
    agreement = float((expected["prediction"] == reloaded).mean()) if len(expected) else float("nan")
    examples = pd.DataFrame({
        "text": expected["text"].str.slice(0, 120),
        "label": expected["label"],
        "evaluation": expected["prediction"],
        "pipeline()": reloaded,
        "score": [round(output["score"], 3) for output in outputs],
    }).head(8)
    update_metrics(config, "deploy", {"pipeline_agreement": agreement, "checked": len(expected)})
    return Deployment(model_dir=paths.model, checked=len(expected), agreement=agreement, examples=examples)
