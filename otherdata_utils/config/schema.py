"""The run's config: one pydantic model of every run parameter, its sources and monitoring stream, the replicates
shared by every study, and each study kind's parameters under `study` (validated by the kind's registered model).

Hands every later step a validated `Config` with its resolved paths (`config.paths`); `config.loading` builds it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..env import CACHE_DIR_ENV, RUNS_DIR_ENV
from ..execution import Execution
from ..params_text import ConfigError, format_validation_error, merged, unknown_key_message
from .paths import default_data_dir, local_source_candidates, located_model_paths, project_root, resolve_path
from .sources import MonitorSpec, SourceSpec

MixingStrategy = Literal["target_only", "concat", "proportional", "fixed", "temperature", "uniform"]
OtherSelection = Literal["all", "random", "similarity", "importance"]
Truncation = Literal["head", "tail", "head_tail"]
Pooling = Literal["auto", "cls", "mean"]


# The fine-tuning suite; study params files list their own notebooks (setup, data, then the study's).
SUITE_NOTEBOOKS = ("00_setup", "01_data", "02_mixing", "03_finetune", "04_evaluate", "05_domain_transfer", "06_deploy")

# The experiment trackers Accelerate supports (its LoggerType, less "all": a run logs where its params say, not to
# whatever happens to be installed) -> the pip package that provides each. tests/unit/test_tracker_names.py holds this
# to the installed accelerate.
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet-ml",
                    "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                    "trackio": "trackio"}


class Replicates(BaseModel):
    """The replicates every study runs: `seeds` set initialisation and batch order; `split_seeds` (where a study
    honours them) draw which rows a replicate trains on, each with every seed. Null: each seed draws its own rows."""

    model_config = ConfigDict(extra="forbid")

    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    split_seeds: Optional[list[int]] = Field(None, min_length=1)


# Flat keys of earlier params files -> where each lives now: loading one names its new place.
MOVED_KEYS = {
    "seeds": "replicates.seeds", "split_seeds": "replicates.split_seeds",
    "study_k_values": "study.few_shot.k_values (routing: study.routing.k_values)",
    "study_strategies": "study.few_shot.strategies", "study_temperatures": "study.few_shot.temperatures",
    "few_shot_steps": "study.few_shot.steps",
    "few_shot_other_rows": "study.few_shot.other_rows (routing: study.routing.other_rows)",
    "anchors": "study.few_shot.anchors (routing: study.routing.anchors)",
    "setfit_max_k": "study.few_shot.setfit_max_k (routing: study.routing.setfit_max_k)",
    "study_test_rows": "study.few_shot.test_rows", "study_test_agreement": "study.few_shot.test_agreement",
    "study_other_groups": "study.few_shot.other_groups", "study_language_share": "study.language.share",
    "study_peft_methods": "study.peft.methods", "study_peft_learning_rate": "study.peft.learning_rate",
    "study_learning_rate_grid": "study.peft.learning_rate_grid", "study_domains": "study.transfer.domains",
    "study_routing_arms": "study.routing.arms", "study_noise_levels": "study.quality.noise_levels",
    "study_agreement_levels": "study.quality.agreement_levels",
}


class Config(BaseModel):
    """Everything a run needs. Names follow transformers' run_classification.py where one exists."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- run and paths
    run_name: str = "default"  # folder name under runs_dir
    runs_dir: Optional[str] = None  # root of run folders; env OTHERDATA_RUNS_DIR, else runs/ in the project root
    output_dir: Optional[str] = None  # this run's folder; default runs_dir/run_name
    # local copies laid out like shared/data; null = env OTHERDATA_DATA_DIR, else shared/data beside the project
    # root; "" = none, named sources come from the Hugging Face Hub
    data_dir: Optional[str] = None
    cache_dir: Optional[str] = None  # tokenised data and the tiny test model; env OTHERDATA_CACHE_DIR
    quiet: Optional[bool] = None  # no progress bars; null = quiet in the runner's batch runs only (runs.is_quiet)
    notebooks: list[str] = Field(default_factory=lambda: list(SUITE_NOTEBOOKS))  # what the runner executes, in order
    execution: Execution = Field(default_factory=Execution)  # how study cells run: serial or Ray, threads per cell

    # --- data
    sources: list[Union[str, SourceSpec]] = Field(default_factory=lambda: ["uci_sentences"])
    target_domain: Optional[str] = None  # the domain we care about; others are "other data"
    # routing: a class no model trains on (CLINC150's oos, listed last): its validation rows choose the confidence
    # threshold below which a text is handed over to a person, its test rows measure out-of-scope recall
    out_of_scope_class: Optional[str] = None
    validation_split_percentage: float = 10.0  # carved from train when a source has none; 0 with eval_strategy "no"
    test_split_percentage: float = 20.0  # carved when a source has no test split
    max_train_samples: Optional[int] = None  # total training rows after mixing (the mix budget)
    max_eval_samples: Optional[int] = None  # cap on validation rows (seeded, stratified)
    max_test_samples: Optional[int] = None  # cap on test rows (seeded, stratified)

    # --- cleaning
    min_text_chars: int = 1  # shorter texts (after normalisation) are dropped
    max_text_chars: int = 100_000  # a longer text is an input error (a broken row or a whole file in one cell)
    dedupe: bool = True  # drop exact duplicates within a split
    near_dedupe: bool = True  # also drop duplicates after case/punctuation/space folding
    # false keeps a benchmark's test split as published (IMDB's test set repeats 199 texts): scored like the papers
    dedupe_test: bool = True
    remove_leakage: bool = True  # drop training texts that also occur in validation/test

    # --- mixing other data into the target
    mixing_strategy: MixingStrategy = "concat"
    mixing_temperature: float = 2.0  # temperature strategy: p_i ∝ n_i^(1/T)
    mixing_ratios: dict[str, float] = Field(default_factory=dict)  # fixed strategy: domain -> share
    mix_by: Literal["domain", "source"] = "domain"
    few_shot_k: Optional[int] = None  # keep k training examples per class of the target domain
    # which other (non-target) rows enter the mix, before mixing (selection.py): all = every row; random, similarity
    # (kNN of the encoder's embeddings) or importance (DSIR on hashed n-grams) keep other_rows of them
    other_selection: OtherSelection = "all"
    other_rows: Optional[int] = None  # the selection's budget of other rows; null with other_selection all
    # the target as unlabelled text (one a line, or a CSV/TSV/JSONL/parquet `text` column) to select against;
    # null = the target_domain's training rows; relative: beside the params file, then in data_dir
    selection_target_texts: Optional[str] = None
    # label errors in the other data (label_errors.py: confident learning on the frozen-encoder probe's out-of-fold
    # probabilities): keep = not examined; flag = marked (label_issue column, report) but trained on; drop = removed
    other_label_errors: Literal["keep", "flag", "drop"] = "keep"
    # whose out-of-fold probabilities: probe = logistic regression on the frozen encoder's embeddings (seconds);
    # fine_tuned = model_name_or_path fine-tuned with these training parameters on 4/5 of the other rows, 5 times
    label_error_model: Literal["probe", "fine_tuned"] = "probe"

    # --- augmentation
    augmentation: Literal["none", "eda", "back_translation"] = "none"
    augment_fraction: float = 0.0  # extra augmented rows as a share of training rows
    eda_alpha: float = 0.1  # share of words changed by each EDA edit
    back_translation_models: list[str] = Field(default_factory=list)  # [forward model, backward model]

    # --- model and tokenisation
    model_name_or_path: str = "default"  # Hub id, local dir, "default" (packaged MiniLM) or "tiny-random"
    max_seq_length: int = 128
    truncation: Truncation = "head"  # head, tail, or head_tail (first head_tokens + the rest from the end)
    head_tokens: int = 128  # head_tail: tokens kept from the start
    group_by_length: bool = True  # length-grouped batches (shuffle, then sort within chunks)
    # the sentence vector the classification head reads: cls = the [CLS] pooler (AutoModelForSequenceClassification);
    # mean = the encoder's own sentence-transformers pooling (its 1_Pooling/config.json; the mask-weighted token mean
    # where its folder declares none), as all-MiniLM-L6-v2 was trained and the frozen probe reads it; auto = mean for a
    # local sentence-transformers folder (the packaged MiniLM) or a classifier trained with mean, cls elsewhere (a Hub
    # id: say mean to get it). The validation-only head study chose mean for the packaged encoder (results/
    # study_head_kitchen/, study_head_yelp/); runs before it read cls. A mean folder loads with otherdata_utils.
    pooling: Pooling = "auto"
    peft_method: Literal["none", "lora", "adalora"] = "none"  # parameter-efficient tuning (peft); none = full
    lora_r: int = Field(8, ge=1)  # LoRA rank; AdaLoRA's average target rank (it starts at 1.5 × this)
    lora_alpha: int = Field(16, ge=1)  # LoRA scaling: updates are scaled by lora_alpha / lora_r
    lora_dropout: float = Field(0.1, ge=0, lt=1)  # dropout on the adapters' input
    lora_target_modules: list[str] = Field(default_factory=list)  # [] = peft's default per model type (query, value)

    # --- training
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    num_train_epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    warmup_ratio: float = 0.1
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    # what training, evaluation and prediction compute in (Accelerate's autocast; weights stay fp32): no = fp32;
    # auto = bf16 where the CPU (AMX/AVX512-BF16) or GPU does it natively, else fp32 (precision.py); fp16 GPU only.
    # auto is the default: bf16 matched fp32 within a 1-point TOST on the default and kitchen data
    # (results/study_precision_default/, results/study_precision_kitchen/) and trains 1.4-1.6x faster on AMX
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    optim_implementation: Literal["auto", "fused", "foreach"] = "auto"  # AdamW kernel; auto = fused where available
    # processes 03_finetune trains one model over (accelerate's notebook_launcher): one per GPU, else CPU processes on
    # gloo; 1 = in the notebook's own process. The global batch is per_device_train_batch_size × num_processes ×
    # gradient_accumulation_steps, so an epoch takes num_processes× fewer optimizer steps (max_steps stays as set)
    num_processes: int = Field(1, ge=1)
    eval_strategy: Literal["no", "steps", "epoch"] = "epoch"
    eval_steps: int = 100
    save_strategy: Literal["no", "steps", "epoch"] = "epoch"
    save_steps: int = 100
    save_total_limit: int = 2
    metric_for_best_model: str = "macro_f1"
    greater_is_better: bool = True
    load_best_model_at_end: bool = True
    early_stopping_patience: Optional[int] = None  # evaluations without improvement before stopping
    resume_from_checkpoint: Optional[str] = None  # a checkpoint folder, or "auto" for the latest in output_dir
    logging_steps: int = 10
    report_to: Union[str, list[str]] = "none"  # "none", a tracker (tensorboard, wandb, mlflow, ...) or a list
    seed: int = 42

    # --- continued MLM pretraining on unlabelled training text: 03_finetune runs it before fine-tuning and starts
    # from the adapted encoder; the continued-pretraining study (11) runs it once per arm and seed
    pretrain_steps: int = Field(0, ge=0)  # MLM optimizer steps; 0 = fine-tune the checkpoint as it is
    pretrain_domains: list[str] = Field(default_factory=list)  # these domains' texts; [] = target_domain's, else all
    pretrain_max_texts: Optional[int] = Field(None, ge=1)  # seeded cap on pretraining texts; null = all
    pretrain_learning_rate: float = Field(5e-5, gt=0)  # AdamW peak lr for continued pretraining
    mlm_probability: float = Field(0.15, gt=0, lt=1)  # share of tokens masked in continued pretraining

    monitoring: Optional[MonitorSpec] = None  # notebook 14: a dated stream scored by the run's (or a saved) model

    # --- studies: replicates shared by every study; each study kind's own parameters under study.<kind>
    replicates: Replicates = Field(default_factory=Replicates)
    # study kind -> its parameters (validated by the kind's registered model when loaded: study_registry)
    study: dict[str, Optional[dict[str, Any]]] = Field(default_factory=dict)

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `no` (mixed_precision: no, --set mixed_precision=no) as False; it means fp32
        return "no" if value is False else value

    @field_validator("learning_rate", "mixing_temperature")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator(
        "max_seq_length", "head_tokens", "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "eval_steps", "save_steps", "logging_steps", "save_total_limit",
        "min_text_chars", "max_text_chars",
    )
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be ≥ 1")
        return value

    @field_validator("max_train_samples", "max_eval_samples", "max_test_samples", "few_shot_k",
                     "early_stopping_patience", "other_rows")
    @classmethod
    def _positive_or_none(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and value < 1:
            raise ValueError("must be ≥ 1, or null for no limit")
        return value

    @field_validator("num_train_epochs", "weight_decay", "max_grad_norm", "augment_fraction", "eda_alpha")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be ≥ 0")
        return value

    @field_validator("warmup_ratio")
    @classmethod
    def _ratio(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError("must be in [0, 1)")
        return value

    @field_validator("sources")
    @classmethod
    def _some_sources(cls, value: list) -> list:
        if not value:
            raise ValueError("needs at least one data source, e.g. ['uci_sentences'] or a {path: ...} entry")
        return value

    @field_validator("notebooks")
    @classmethod
    def _known_notebooks(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one notebook, e.g. ['00_setup', '01_data']")
        folder = project_root() / "notebooks"
        names = [name.removesuffix(".ipynb") for name in value]
        if folder.is_dir():
            available = sorted(p.stem for p in folder.glob("*.ipynb"))
            unknown = [name for name in names if name not in available]
            if unknown:
                raise ValueError(f"unknown notebook(s) {unknown}; choose from {available}")
        return names

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: Union[str, list[str]]) -> Union[str, list[str]]:
        names = [value] if isinstance(value, str) else value
        unknown = [name for name in names if name not in TRACKER_PACKAGES and name != "none"]
        if unknown:
            raise ValueError(f"names unknown tracker(s) {unknown}; use 'none', one of {list(TRACKER_PACKAGES)}, or a "
                             "list of them")
        if "none" in names and len(names) > 1:
            raise ValueError(f"combines 'none' with trackers in {names}; list the trackers only")
        if len(set(names)) != len(names):
            raise ValueError(f"repeats a tracker in {names}; list each once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if problem := split_percentages_problem(self.validation_split_percentage, self.test_split_percentage):
            raise ValueError(problem)
        if self.mixing_strategy == "fixed" and not self.mixing_ratios:
            raise ValueError("mixing_strategy 'fixed' needs mixing_ratios, e.g. {books: 0.5, dvd: 0.5}")
        if any(share < 0 for share in self.mixing_ratios.values()):
            raise ValueError("mixing_ratios must all be ≥ 0")
        if self.mixing_strategy == "target_only" and self.target_domain is None:
            raise ValueError("mixing_strategy 'target_only' needs target_domain")
        if self.few_shot_k is not None and self.target_domain is None:
            raise ValueError("few_shot_k samples the target domain: set target_domain too")
        if problem := selection_problem(self):
            raise ValueError(problem)
        if self.other_label_errors != "keep" and self.target_domain is None:
            raise ValueError(f"other_label_errors {self.other_label_errors!r} examines the rows outside the target: "
                             "set target_domain too")
        if self.truncation == "head_tail" and self.head_tokens >= self.max_seq_length - 2:
            raise ValueError(f"head_tokens ({self.head_tokens}) must leave room for the tail: it must be below "
                             f"max_seq_length - 2 = {self.max_seq_length - 2}; lower head_tokens or raise "
                             "max_seq_length")
        if self.augmentation == "back_translation" and len(self.back_translation_models) != 2:
            raise ValueError("back_translation needs back_translation_models: [forward model id, backward model id]")
        if not any(spec.label_mapping is None for spec in self.target_specs):
            raise ValueError("every source sets label_mapping or intermediate, so no source holds the target's "
                             "classes: list the target's own source (with neither option) first")
        return self

    # --- resolved paths: the one place every root comes from. Relative paths resolve against the project root
    # (a params file's own ones against its folder: `load_config`), so a notebook opened from notebooks/ and the
    # runner started from anywhere agree.
    @property
    def source_specs(self) -> list[SourceSpec]:
        return [SourceSpec(name=s) if isinstance(s, str) else s for s in self.sources]

    @property
    def target_specs(self) -> list[SourceSpec]:
        """The sources of the target's fine-tuning: all but those marked `intermediate` (fine-tuned on first)."""
        return [spec for spec in self.source_specs if not spec.intermediate]

    @property
    def trackers(self) -> list[str]:
        """The experiment trackers `report_to` names, in order; [] for "none"."""
        names = [self.report_to] if isinstance(self.report_to, str) else self.report_to
        return [name for name in names if name != "none"]

    def resolved_data_dir(self) -> Optional[Path]:
        """The local data root, or None: then named sources come from the Hugging Face Hub."""
        root = self.data_dir if self.data_dir is not None else default_data_dir()
        return resolve_path(root) if root else None

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return resolve_path(self.output_dir)
        return resolve_path(self.runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs") / self.run_name

    def resolved_cache_dir(self) -> Path:
        root = self.cache_dir or os.environ.get(CACHE_DIR_ENV)
        if root:
            return resolve_path(root)
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "otherdata"

    def resolved(self) -> "Config":
        """A copy with every path made absolute: what a run folder's params.yaml records, so each notebook (run in
        notebooks/) finds the same files as pre-flight did, wherever the runner was started."""
        data_dir = self.resolved_data_dir()
        return self.replace(
            data_dir=str(data_dir) if data_dir else "",  # "": the Hub, even where a default data dir exists
            output_dir=str(self.resolved_output_dir()),
            cache_dir=str(self.resolved_cache_dir()),
            sources=[located_source(source, local_source_candidates(source.path, data_dir))
                     if isinstance(source, SourceSpec) and source.path else source for source in self.sources],
            selection_target_texts=located_file(self.selection_target_texts,
                                                local_source_candidates(self.selection_target_texts, data_dir))
            if self.selection_target_texts else None,
            **located_model_paths(self.model_dump(), [Path.cwd(), project_root()]),
        )

    def to_params(self) -> dict[str, Any]:
        """Plain values (for params.yaml and papermill); round-trips through `Config.from_params`."""
        return self.model_dump(mode="json", exclude_none=False)

    def replace(self, **changes: Any) -> "Config":
        """A validated copy with some values changed; `replicates` and `study` change parameter by parameter
        (``replace(study={"few_shot": {"k_values": [4]}})`` keeps the block's other parameters)."""
        return Config.from_params(merged_layer(self.to_params(), changes), origin="replace()")

    @classmethod
    def from_params(cls, params: dict[str, Any], origin: str = "parameters") -> "Config":
        """Build and validate from plain values; any problem is one `ConfigError` naming the key."""
        if not isinstance(params, dict):
            raise ConfigError(f"{origin}: expected a mapping of parameter names to values, got {type(params).__name__}")
        check_known_keys(params, origin)
        try:
            return cls(**params)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, origin)) from None


def split_percentages_problem(validation_percentage: float, test_percentage: float) -> Optional[str]:
    """Why these shares cannot carve a source's splits, or None. A validation share of 0 suits fixed-epoch runs that
    score their last model; every run needs test rows and training rows."""
    if 0 <= validation_percentage < 100 and 0 < test_percentage < 100 and validation_percentage + test_percentage < 100:
        return None
    return (f"validation_split_percentage={validation_percentage} (0 allowed) and test_split_percentage="
            f"{test_percentage} must each be between 0 and 100 and leave rows for training (sum < 100)")


def selection_problem(config: "Config") -> Optional[str]:
    """Why the selection parameters cannot work together, or None."""
    method = config.other_selection
    if method == "all":
        stray = [key for key in ("other_rows", "selection_target_texts") if getattr(config, key) is not None]
        if stray:
            return (f"{' and '.join(stray)} set, but other_selection is 'all' (every other row is kept): choose "
                    "other_selection random, similarity or importance, or drop " + " and ".join(stray))
        return None
    if config.other_rows is None:
        return (f"other_selection {method!r} needs other_rows, the number of other rows to keep (e.g. "
                "other_rows: 256)")
    if method != "random" and config.target_domain is None and config.selection_target_texts is None:
        return (f"other_selection {method!r} compares other rows with the target: set target_domain (its training "
                "rows are the target texts) or selection_target_texts (a file of unlabelled target text)")
    return None


def located_file(path: str, candidates: list[Path], missing: Optional[Path] = None) -> str:
    """`path` made absolute: the first candidate that exists, else `missing`, else as given."""
    found = next((candidate for candidate in candidates if candidate.exists()), missing)
    return str(found.resolve()) if found is not None else path


def located_source(source: SourceSpec, candidates: list[Path], missing: Optional[Path] = None) -> SourceSpec:
    """The source with its path made absolute: the first candidate that exists, else `missing` (None: as given)."""
    found = next((candidate for candidate in candidates if candidate.exists()), missing)
    return source.model_copy(update={"path": str(found.resolve())}) if found is not None else source


def check_known_keys(params: dict[str, Any], origin: str) -> None:
    """A `ConfigError` naming `origin` for every key of `params` that is no parameter: the close ones, or for a key
    of earlier params files, its new place."""
    unknown = [key for key in params if key not in Config.model_fields]
    if unknown:
        raise ConfigError("\n".join(unknown_key_message(key, key, list(Config.model_fields), origin,
                                                         MOVED_KEYS.get(key, "")) for key in unknown))
    if isinstance(params.get("replicates"), dict):
        unknown = [key for key in params["replicates"] if key not in Replicates.model_fields]
        if unknown:
            raise ConfigError("\n".join(unknown_key_message(f"replicates.{key}", key, list(Replicates.model_fields),
                                                             origin) for key in unknown))


NESTED_BLOCKS = ("replicates", "study")  # a later layer sets some of these blocks' parameters, the rest stay


def merged_layer(params: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """`layer` over `params`: key by key, and parameter by parameter inside `replicates` and `study`."""
    out = {**params, **{key: value for key, value in layer.items() if key not in NESTED_BLOCKS}}
    for key in NESTED_BLOCKS:
        if key in layer:
            out[key] = merged(params.get(key) or {}, layer[key]) if isinstance(layer[key], dict) else layer[key]
    return out
