"""Anchors scored beside the fine-tuning arms on the same rows: a frozen-encoder probe and SetFit.

Hands the studies engine an `AnchorResult` (predictions, probabilities, seconds, chosen hyperparameters) per anchor.
"""
from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import sklearn.metrics as skm
import torch
from accelerate.utils import set_seed
from datasets import Dataset
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from .metrics import compute_classification_metrics
from .modeling import quiet_transformers
from .pooling import pool

# Decades from strong to weak regularisation: on unit-length embeddings a small C keeps the logits near flat, a
# large one fits a handful of rows exactly; which is better depends on k and the domain, so validation decides.
PROBE_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
# k-shot rows are balanced by construction, so "balanced" changes nothing there; where a class has fewer rows than
# k (or other data tips the balance) it keeps the head from favouring the class the sampling made common.
PROBE_CLASS_WEIGHT = "balanced"


@dataclass
class AnchorResult:
    """One anchor fitted on train rows and scored on test rows; probabilities have one column per label name."""

    anchor: str
    labels: list[int]
    predictions: list[int]
    probabilities: list[list[float]]
    accuracy: float
    macro_f1: float
    n_train: int
    train_seconds: float  # fitting, validation choice included; test scoring excluded, as in the engine's cells
    test_seconds: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _scored(anchor: str, test_rows: Dataset, probabilities: np.ndarray, label_names: Sequence[str], *,
            n_train: int, train_seconds: float, test_seconds: float, hyperparameters: dict[str, Any]
            ) -> AnchorResult:
    labels = [int(label) for label in test_rows["label"]]
    predictions = [int(p) for p in probabilities.argmax(axis=1)]
    scores = compute_classification_metrics(labels, predictions, label_names)
    return AnchorResult(anchor=anchor, labels=labels, predictions=predictions,
                        probabilities=probabilities.round(6).tolist(), accuracy=scores["accuracy"],
                        macro_f1=scores["macro_f1"], n_train=n_train, train_seconds=round(train_seconds, 3),
                        test_seconds=round(test_seconds, 3), hyperparameters=hyperparameters)


def _full_probabilities(probabilities: np.ndarray, classes: Sequence[int], num_labels: int) -> np.ndarray:
    """Columns for every label id: a head fitted on rows missing a class gives it probability 0."""
    full = np.zeros((probabilities.shape[0], num_labels))
    full[:, [int(c) for c in classes]] = probabilities
    return full


def _check_rows(train_rows: Dataset, test_rows: Dataset) -> None:
    if len(set(train_rows["label"])) < 2:
        raise ValueError(f"an anchor needs train rows of at least two classes; the {len(train_rows)} rows given "
                         f"hold labels {sorted(set(train_rows['label']))}")
    if len(test_rows) == 0:
        raise ValueError("an anchor needs test rows to score; test_rows is empty")


# --- frozen-encoder probe --------------------------------------------------------------------------------------------

@torch.inference_mode()
def mean_pooled_embeddings(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *, max_length: int,
                           batch_size: int = 64) -> np.ndarray:
    """Mask-weighted mean of the last hidden states, L2-normalised (all-MiniLM-L6-v2's own sentence embedding).

    Texts are embedded longest first so batches pad little, then put back in their order.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    device = next(model.parameters()).device
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        pooled = pool(hidden, batch["attention_mask"])
        out[rows] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
    return out


class FrozenEncoder:
    """The base encoder loaded once, embedding texts with `mean_pooled_embeddings` and remembering each text's
    vector: a study fits one probe per split on the same validation and test rows, which are then embedded once."""

    def __init__(self, model_path: str, max_length: int = 128, *, batch_size: int = 64, quiet: bool = True):
        with quiet_transformers(quiet):
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModel.from_pretrained(model_path)
        self.model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.model_path, self.max_length, self.batch_size = model_path, max_length, batch_size
        self._vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            vectors = mean_pooled_embeddings(self.model, self.tokenizer, missing, max_length=self.max_length,
                                             batch_size=self.batch_size)
            self._vectors.update(zip(missing, vectors))
        return np.stack([self._vectors[text] for text in texts]) if texts else \
            np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


def probe_fit_and_score(encoder: FrozenEncoder | str, train_rows: Dataset, validation_rows: Dataset,
                        test_rows: Dataset, label_names: Sequence[str], seed: int, max_length: int = 128, *,
                        c_grid: Sequence[float] = PROBE_C_GRID, batch_size: int = 64,
                        quiet: bool = True) -> AnchorResult:
    """Logistic regression on frozen mean-pooled embeddings of the base encoder (no fine-tuning).

    `encoder` is a `FrozenEncoder` to share across fits (its own max length applies) or a model path to load one.
    C is the one in `c_grid` with the best validation macro-F1 (the fine-tuning arms' checkpoint metric), ties
    going to the smaller C; the head is then fitted on the train rows only, the data budget of the arms.
    """
    _check_rows(train_rows, test_rows)
    if len(validation_rows) == 0:
        raise ValueError("probe_fit_and_score chooses C on validation rows; validation_rows is empty")
    label_names = list(label_names)
    started = time.perf_counter()
    if not isinstance(encoder, FrozenEncoder):
        encoder = FrozenEncoder(encoder, max_length, batch_size=batch_size, quiet=quiet)

    def embed(rows: Dataset) -> np.ndarray:
        return encoder.embed(list(rows["text"]))

    x_train, y_train = embed(train_rows), np.asarray(train_rows["label"])
    x_validation, y_validation = embed(validation_rows), np.asarray(validation_rows["label"])

    def head(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, class_weight=PROBE_CLASS_WEIGHT, max_iter=5000, random_state=seed
                                  ).fit(x_train, y_train)

    validation_f1 = {c: float(skm.f1_score(y_validation, head(c).predict(x_validation), average="macro",
                                           labels=list(range(len(label_names))), zero_division=0))
                     for c in sorted(c_grid)}
    best_c = max(validation_f1, key=lambda c: (validation_f1[c], -c))
    classifier = head(best_c)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    probabilities = _full_probabilities(classifier.predict_proba(embed(test_rows)), classifier.classes_,
                                        len(label_names))
    return _scored("probe", test_rows, probabilities, label_names, n_train=len(train_rows),
                   train_seconds=train_seconds, test_seconds=time.perf_counter() - started, hyperparameters={
                       "C": best_c, "c_grid": sorted(c_grid), "validation_macro_f1": validation_f1,
                       "class_weight": PROBE_CLASS_WEIGHT, "pooling": "mean, L2-normalised",
                       "max_length": encoder.max_length, "seed": seed})


# --- SetFit ----------------------------------------------------------------------------------------------------------

def setfit_runs_at(k: Optional[int], max_k: Optional[int]) -> bool:
    """Whether the SetFit anchor runs at `k` rows per class (None = every row). Its few-shot defaults pair each row
    2 × 20 times (2,560 pairs at k = 32 took ~60 s on this project's AVX2 CPU; every row of a data set is tens of
    thousands), so an anchor meant for few shots runs neither at k = all nor above `max_k` when set; the probe
    anchors those cells."""
    return k is not None and (max_k is None or k <= max_k)


def setfit_scope(anchor_names: Sequence[str], k_values: Sequence[Optional[int]],
                 max_k: Optional[int]) -> Optional[str]:
    """The design's sentence for the study's cells `setfit_runs_at` leaves out; None when SetFit is not an anchor
    or runs at every k of the study."""
    if "setfit" not in anchor_names or all(setfit_runs_at(k, max_k) for k in k_values):
        return None
    above = f" nor above k = {max_k} per class" if max_k is not None else ""
    return f"SetFit is not run at k = all{above} (its defaults make 2 × 20 contrastive pairs per training row)"


def setfit_fit_and_score(model_path: str, train_rows: Dataset, test_rows: Dataset, label_names: Sequence[str],
                         seed: int, *, num_iterations: int = 20, num_epochs: int = 1, batch_size: int = 16,
                         body_learning_rate: float = 2e-5, max_length: Optional[int] = None,
                         quiet: bool = True, work_dir: Optional[Path] = None) -> AnchorResult:
    """SetFit (Tunstall et al. 2022): the body tuned contrastively on pairs of train rows, then a logistic head.

    The defaults are SetFit's few-shot ones (20 pair iterations per row, one epoch, batch 16, body lr 2e-5) and
    its default head (scikit-learn LogisticRegression). `model_path` is a local folder, read offline: a
    sentence-transformers folder keeps its pooling; a plain transformers one gets mean pooling. `max_length`
    None keeps the body's own limit (256 tokens for all-MiniLM-L6-v2). `work_dir` takes the trainer's files (a
    study cell's own folder under the run folder); without it a temporary folder is used and removed.
    """
    # setfit is the optional `studies` extra and pulls in sentence-transformers' trainer: only this anchor needs it.
    import setfit
    from setfit import SetFitModel, Trainer, TrainingArguments

    _check_rows(train_rows, test_rows)
    label_names = list(label_names)
    set_seed(seed)
    setfit_verbosity = setfit.logging.get_verbosity()
    started = time.perf_counter()
    with quiet_transformers(quiet), ExitStack() as scratch:
        workdir = str(work_dir) if work_dir is not None else scratch.enter_context(
            tempfile.TemporaryDirectory(prefix="otherdata-setfit-"))
        if quiet:
            setfit.logging.set_verbosity_error()
        try:
            model = SetFitModel.from_pretrained(model_path)
            if max_length is not None:
                model.model_body.max_seq_length = max_length
            args = TrainingArguments(
                output_dir=workdir, num_iterations=num_iterations, num_epochs=num_epochs, batch_size=batch_size,
                body_learning_rate=body_learning_rate, seed=seed, save_strategy="no", report_to="none",
                logging_strategy="no" if quiet else "steps", show_progress_bar=not quiet)
            trainer = Trainer(model=model, args=args, train_dataset=train_rows.select_columns(["text", "label"]))
            trainer.train()
            train_seconds = time.perf_counter() - started
            started = time.perf_counter()
            probabilities = _full_probabilities(
                model.predict_proba(list(test_rows["text"]), as_numpy=True, show_progress_bar=not quiet),
                model.model_head.classes_, len(label_names))
        finally:
            setfit.logging.set_verbosity(setfit_verbosity)
    return _scored("setfit", test_rows, probabilities, label_names, n_train=len(train_rows),
                   train_seconds=train_seconds, test_seconds=time.perf_counter() - started, hyperparameters={
                       "num_iterations": num_iterations, "pairs": 2 * num_iterations * len(train_rows),
                       "num_epochs": num_epochs, "batch_size": batch_size, "body_learning_rate": body_learning_rate,
                       "head": "LogisticRegression (SetFit default)",
                       "max_length": model.model_body.max_seq_length, "seed": seed,
                       "setfit_version": setfit.__version__})
