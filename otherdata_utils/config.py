"""The one config object: defaults, loading from YAML files and papermill parameters, validation.

Every later step takes a `Config`; paths (data dir, runs dir, cache dir) are resolved here and nowhere else.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .env import CACHE_DIR_ENV, DATA_DIR_ENV, PARAMS_OVERLAY_ENV, RUNS_DIR_ENV
from .params_text import ConfigError, parse_overrides, read_params_file

# Parameters naming a folder: a params file's relative value is relative to the file's folder.
FOLDER_PARAMS = ("data_dir", "runs_dir", "output_dir", "cache_dir")
SHARED_DATA = ("shared", "data")  # the data dir beside the project root: read by default, `data fetch` writes there

MixingStrategy = Literal["target_only", "concat", "proportional", "fixed", "temperature", "uniform"]
Truncation = Literal["head", "tail", "head_tail"]


# The fine-tuning suite; study params files list their own notebooks (setup, data, then the study's).
SUITE_NOTEBOOKS = ("00_setup", "01_data", "02_mixing", "03_finetune", "04_evaluate", "05_domain_transfer", "06_deploy")

# The experiment trackers Accelerate supports (its LoggerType, less "all": a run logs where its params say, not to
# whatever happens to be installed) -> the pip package that provides each. tests/test_tracking.py holds this to
# the installed accelerate.
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet-ml",
                    "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                    "trackio": "trackio"}


class SourceSpec(BaseModel):
    """One data source: a named data set (``imdb``, ``uci_sentences:yelp``) or a local file.

    A local file names its ``path`` (CSV, TSV, JSONL, plain or .gz, parquet, or an ``aclImdb/`` folder), which
    columns hold text and label, how raw label values map to class ids, and the domain its rows belong to.

    A source without the target's classes (those of the first source with neither option) says how it is used:
    ``label_mapping`` maps each of its classes to a target class (null drops its rows), e.g. ``{neg: negative, pos:
    positive}`` beside a 3-class target; ``intermediate`` fine-tunes on it first with its own classes and head, and
    the target's fine-tuning starts from that encoder with a fresh head (STILTs, Phang et al. 2018).
    """

    model_config = ConfigDict(extra="forbid")

    name: Optional[str] = None  # named source, optionally with a subset: "blitzer_mds:books"
    path: Optional[str] = None  # local file or folder; relative: beside the params file, then in data_dir
    format: Optional[Literal["csv", "tsv", "jsonl", "parquet", "aclimdb"]] = None  # guessed from the path
    text_column: str = "text"
    label_column: str = "label"
    label_map: Optional[dict[str, int]] = None  # raw label value (as text) -> class id
    label_names: Optional[list[str]] = None  # class names in id order
    domain: Optional[str] = None  # domain name for every row of a local file
    source: Optional[str] = None  # source name for reports; defaults to the file name
    split: Optional[Literal["train", "validation", "test"]] = None  # a file that holds one split only
    encoding: str = "utf-8"  # text encoding of a local file
    label_mapping: Optional[dict[str, Optional[str]]] = None  # own class name -> target class name (null: drop rows)
    intermediate: bool = False  # fine-tune on this source first, with its own classes and head

    @model_validator(mode="after")
    def _name_or_path(self) -> "SourceSpec":
        if (self.name is None) == (self.path is None):
            raise ValueError("a source needs exactly one of 'name' (a named data set) or 'path' (a local file)")
        if self.intermediate and self.label_mapping is not None:
            raise ValueError(f"source {self.label!r} sets both label_mapping and intermediate: map its classes into "
                             "the target's, or fine-tune on it first with its own classes (intermediate), not both")
        if self.label_mapping is not None and not any(self.label_mapping.values()):
            raise ValueError(f"source {self.label!r}: label_mapping maps no class to a target class; map at least "
                             "one, e.g. {neg: negative, pos: positive}")
        return self

    @property
    def label(self) -> str:
        """Short human name: the named source, or the file's own source name."""
        if self.name:
            return self.name
        return self.source or Path(self.path or "").name


class MonitorSpec(BaseModel):
    """A dated text stream a trained classifier scores in batches (notebook 14): one class's share per period, with
    a control limit set on a baseline period. `stream` is a named source with dates (``blitzer_mds:kitchen``) or a
    CSV / TSV / JSONL / parquet file (relative to the params file) with a time and a text column."""

    model_config = ConfigDict(extra="forbid")

    stream: str
    text_column: str = "text"
    time_column: str = "date"
    label: str  # the class whose share is watched, e.g. neg
    frequency: Literal["D", "W", "M"] = "D"  # periods: days, weeks (to Sunday) or months
    baseline_end: str  # last day of the baseline period (ISO date): its share sets the control limit
    start: Optional[str] = None  # first day read (ISO date); null = the stream's first
    model: Optional[str] = None  # a saved classifier folder; null = this run's model (03_finetune)
    batch_size: int = Field(256, ge=1)  # texts scored per batch


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
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    optim_implementation: Literal["auto", "fused", "foreach"] = "auto"  # AdamW kernel; auto = fused where available
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

    # --- studies
    seeds: list[int] = Field(default_factory=lambda: [42])  # replicate seeds for study cells
    # which k target rows and which other rows a replicate draws (one split per value); null = the split follows
    # `seeds`. A study cell is (arm, split seed, seed): the seed sets initialisation and batch order only.
    split_seeds: Optional[list[int]] = Field(None, min_length=1)
    # few-shot arms of a k: equal_steps = every arm trains as many rows (target-only repeats its k-shot rows);
    # equal_target_visits = each target row is seen as often in every arm (other data adds steps)
    few_shot_steps: Literal["equal_steps", "equal_target_visits"] = "equal_steps"
    # few-shot: other rows drawn per split (the pool an additive arm adds from); null = max_train_samples less the
    # k-shot target rows, or every other row without a budget
    few_shot_other_rows: Optional[int] = Field(None, ge=0)
    # few-shot anchors on the same splits and test rows: frozen-encoder probe, SetFit on the target's k-shot rows
    anchors: list[Literal["probe", "setfit"]] = Field(default_factory=list)
    setfit_max_k: Optional[int] = Field(None, ge=1)  # the SetFit anchor only at k per class ≤ this (never at all)
    study_test_rows: Optional[int] = Field(None, ge=1)  # few-shot: one fixed stratified sample of target test rows
    study_test_agreement: Optional[float] = Field(None, gt=0, le=1)  # few-shot: only target test rows this agreed
    study_other_groups: list[str] = Field(default_factory=list)  # few-shot: an arm per other group adding it alone
    study_language_share: float = Field(0.5, gt=0, lt=1)  # language study: target language's share of a mixed arm
    study_peft_methods: list[Literal["none", "lora", "adalora"]] = Field(  # PEFT study arms; none = full fine-tuning
        default_factory=lambda: ["none", "lora", "adalora"], min_length=1)
    study_peft_learning_rate: Optional[float] = Field(None, gt=0)  # PEFT arms' lr; null = learning_rate
    # PEFT study: learning rates tried per method, one chosen on validation; a method not named keeps its fixed lr
    study_learning_rate_grid: dict[Literal["none", "lora", "adalora"], list[float]] = Field(default_factory=dict)
    study_domains: list[str] = Field(default_factory=list)  # transfer matrix: domains to train and test; [] = all
    monitoring: Optional[MonitorSpec] = None  # notebook 14: a dated stream scored by the run's (or a saved) model
    # routing study: how other desks' intents (another label space) are used; target_only is the reference
    study_routing_arms: list[Literal["target_only", "intermediate", "joint"]] = Field(
        default_factory=lambda: ["target_only", "intermediate", "joint"], min_length=1)
    # few-shot: target rows per class (null = all), mixing arms ("temperature" runs once per study_temperatures T)
    study_k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32, 128, None], min_length=1)
    study_strategies: list[MixingStrategy] = Field(
        default_factory=lambda: ["target_only", "concat", "proportional", "temperature", "uniform"], min_length=1)
    study_temperatures: list[float] = Field(default_factory=lambda: [2.0, 5.0], min_length=1)
    study_noise_levels: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.3], min_length=1)  # OTHER data
    study_agreement_levels: list[float] = Field(default_factory=lambda: [1.0, 0.75, 0.66, 0.5], min_length=1)

    @field_validator("study_k_values", "study_temperatures", "study_noise_levels", "study_agreement_levels")
    @classmethod
    def _study_values(cls, value: list, info: Any) -> list:
        allowed, valid = {
            "study_k_values": ("≥ 1 or null (all target rows)", lambda v: v is None or v >= 1),
            "study_temperatures": ("> 0", lambda v: v > 0),
            "study_noise_levels": ("in [0, 1)", lambda v: 0 <= v < 1),
            "study_agreement_levels": ("in (0, 1]", lambda v: 0 < v <= 1),
        }[info.field_name]
        bad = [v for v in value if not valid(v)]
        if bad:
            raise ValueError(f"every value must be {allowed}; {bad} is not")
        if len(set(value)) != len(value):
            raise ValueError(f"values repeat in {value}; list each once")
        return value

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
                     "early_stopping_patience")
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

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one seed")
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
        return _resolve(root) if root else None

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return _resolve(self.output_dir)
        return _resolve(self.runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs") / self.run_name

    def resolved_cache_dir(self) -> Path:
        root = self.cache_dir or os.environ.get(CACHE_DIR_ENV)
        if root:
            return _resolve(root)
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "otherdata"

    def resolved(self) -> "Config":
        """A copy with every path made absolute: what a run folder's params.yaml records, so each notebook (run in
        notebooks/) finds the same files as pre-flight did, wherever the runner was started."""
        data_dir = self.resolved_data_dir()
        return self.replace(
            data_dir=str(data_dir) if data_dir else "",  # "": the Hub, even where a default data dir exists
            output_dir=str(self.resolved_output_dir()),
            cache_dir=str(self.resolved_cache_dir()),
            sources=[_located_source(source, local_source_candidates(source.path, data_dir))
                     if isinstance(source, SourceSpec) and source.path else source for source in self.sources],
            **_located_model_paths(self.model_dump(), [Path.cwd(), project_root()]),
        )

    def to_params(self) -> dict[str, Any]:
        """Plain values (for params.yaml and papermill); round-trips through `Config.from_params`."""
        return self.model_dump(mode="json", exclude_none=False)

    def replace(self, **changes: Any) -> "Config":
        """A validated copy with some values changed."""
        return Config.from_params({**self.to_params(), **changes}, origin="replace()")

    @classmethod
    def from_params(cls, params: dict[str, Any], origin: str = "parameters") -> "Config":
        """Build and validate from plain values; any problem is one `ConfigError` naming the key."""
        if not isinstance(params, dict):
            raise ConfigError(f"{origin}: expected a mapping of parameter names to values, got {type(params).__name__}")
        _check_known_keys(params, origin)
        try:
            return cls(**params)
        except ValidationError as error:
            raise ConfigError(_format_validation_error(error, origin)) from None


def project_root(start: Optional[Path] = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding both params/ and notebooks/; else the checkout
    this package runs from (started from another folder, the suite's notebooks are still found); else cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def default_data_dir() -> Optional[str]:
    """The data root every entry point shares when a config names none: OTHERDATA_DATA_DIR, else shared/data beside
    the project root where it exists. None (also for an empty OTHERDATA_DATA_DIR=): the Hugging Face Hub."""
    if DATA_DIR_ENV in os.environ:
        return os.environ[DATA_DIR_ENV] or None
    shared = project_root().parent.joinpath(*SHARED_DATA)
    return str(shared) if shared.is_dir() else None


def local_source_candidates(path: str, data_dir: Optional[Path]) -> list[Path]:
    """Where a local source's path may point, in order: itself if absolute; else data_dir, the current folder, the
    project root (a params file's relative paths were made absolute against its folder by `load_config`)."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return [given]
    bases = ([Path(data_dir)] if data_dir is not None else []) + [Path.cwd(), project_root()]
    return list(dict.fromkeys(base / given for base in bases))


def split_percentages_problem(validation_percentage: float, test_percentage: float) -> Optional[str]:
    """Why these shares cannot carve a source's splits, or None. A validation share of 0 suits fixed-epoch runs that
    score their last model; every run needs test rows and training rows."""
    if 0 <= validation_percentage < 100 and 0 < test_percentage < 100 and validation_percentage + test_percentage < 100:
        return None
    return (f"validation_split_percentage={validation_percentage} (0 allowed) and test_split_percentage="
            f"{test_percentage} must each be between 0 and 100 and leave rows for training (sum < 100)")


def _resolve(path: Union[str, Path]) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (project_root() / path).resolve()


def load_config(path: Union[str, Path, None] = None, overrides: Union[dict[str, Any], str, None] = None) -> Config:
    """Defaults, then a params YAML file, then the params overlay that OTHERDATA_PARAMS_OVERLAY names (Colab's Hub
    data: `colab.setup` sets it), then overrides (``--set`` values or papermill parameters): each replaces the
    earlier values key by key. Overrides are a mapping, or a YAML/JSON mapping as text, which is what papermill's
    ``-p overrides '{"seed": 1}'`` passes.

    A relative `path` missing from the current folder is looked up in the project root, so ``params/ci.yaml`` works
    from the repo root and from notebooks/. Relative paths inside a file (the overlay too) resolve against that
    file's folder (a local source not there, against data_dir): pre-flight and every notebook then read the same files.
    """
    params: dict[str, Any] = {}
    origins: list[str] = []
    sources_folder = None  # the folder of the file whose `sources` are kept: their relative paths start there
    for file, origin in _params_files(path):
        layer = read_params_file(file)
        _check_known_keys(layer, origin)  # named per file: a key unknown to the overlay is not blamed on `path`
        folder = file.resolve().parent
        params.update(_anchored(layer, folder))
        origins.append(origin)
        if "sources" in layer:
            sources_folder = folder
    overrides = parse_overrides(overrides)
    if overrides:
        params.update(overrides)
        origins.append("overrides")
        if "sources" in overrides:
            sources_folder = None
    config = Config.from_params(params, origin=" + ".join(origins) or "defaults")
    relative = [isinstance(source, SourceSpec) and bool(source.path)
                and not Path(source.path).expanduser().is_absolute() for source in config.sources]
    if sources_folder is None or not any(relative):
        return config
    # Sources need the final data_dir: a file beside the params file wins, then data_dir; found in neither, the
    # path is kept beside the params file, so "file not found" names the folder the user meant.
    data_dir = config.resolved_data_dir()
    return config.replace(sources=[
        _located_source(source, [sources_folder / source.path] + ([data_dir / source.path] if data_dir else []),
                        missing=sources_folder / source.path) if is_relative else source
        for source, is_relative in zip(config.sources, relative)])


def _params_files(path: Union[str, Path, None]) -> list[tuple[Path, str]]:
    """The params files `load_config` reads, in order, each with the name its errors give it: `path`, then the
    overlay OTHERDATA_PARAMS_OVERLAY names (unset or empty: none)."""
    files = []
    if path is not None:
        found = find_params_file(path)
        files.append((found, str(found)))
    overlay = os.environ.get(PARAMS_OVERLAY_ENV)
    if overlay:
        found = find_params_file(overlay)
        origin = f"{found} (the params overlay {PARAMS_OVERLAY_ENV} names)"
        if not found.is_file():
            raise ConfigError(f"{origin}: params file not found; point {PARAMS_OVERLAY_ENV} at a params file, or "
                              "unset it")
        files.append((found, origin))
    return files


def find_params_file(path: Union[str, Path]) -> Path:
    """`path` as given; relative and missing from the current folder, the project root's file of that name."""
    path = Path(path).expanduser()
    in_root = project_root() / path
    if not path.is_absolute() and not path.exists() and in_root.exists():
        return in_root
    return path


def _anchored(params: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A params file's folder and model paths made absolute against its folder (local sources: `load_config`)."""
    anchored = dict(params)
    for key in FOLDER_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value:  # "" (data_dir) means none: the Hub
            anchored[key] = str((folder / Path(value).expanduser()).resolve())
    return {**anchored, **_located_model_paths(params, [folder])}


def _located_model_paths(params: dict[str, Any], bases: list[Path]) -> dict[str, Any]:
    """model_name_or_path, resume_from_checkpoint and back-translation models that are relative folders under one of
    `bases`, made absolute: a notebook runs in notebooks/ and would not find them."""
    located: dict[str, Any] = {}
    for key in ("model_name_or_path", "resume_from_checkpoint"):
        if params.get(key) is not None:
            located[key] = _located_path(params[key], bases)
    if isinstance(params.get("monitoring"), dict):  # a stream file or model folder named relative to the file
        monitor = params["monitoring"]
        located["monitoring"] = {**monitor, **{key: _located_path(monitor[key], bases)
                                               for key in ("stream", "model") if monitor.get(key) is not None}}
    if isinstance(params.get("back_translation_models"), list):
        located["back_translation_models"] = [_located_path(name, bases) for name in params["back_translation_models"]]
    return located


def _located_path(value: Any, bases: list[Path]) -> Any:
    """`value` made absolute against the first base that holds it, when it looks like a path: bare names are Hub
    ids or keywords ("default", "tiny-random", "auto") even where a folder of that name exists."""
    if not isinstance(value, str) or not (value.startswith((".", "~")) or "/" in value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    found = next((base / path for base in bases if (base / path).exists()), None)
    return str(found.resolve()) if found else value


def _located_source(source: SourceSpec, candidates: list[Path], missing: Optional[Path] = None) -> SourceSpec:
    """The source with its path made absolute: the first candidate that exists, else `missing` (None: as given)."""
    found = next((candidate for candidate in candidates if candidate.exists()), missing)
    return source.model_copy(update={"path": str(found.resolve())}) if found is not None else source


def _check_known_keys(params: dict[str, Any], origin: str) -> None:
    """A `ConfigError` naming `origin` for every key of `params` that is no parameter, with the close ones."""
    unknown = [key for key in params if key not in Config.model_fields]
    if unknown:
        raise ConfigError("\n".join(_unknown_key_message(key, origin) for key in unknown))


def _unknown_key_message(key: str, origin: str) -> str:
    close = difflib.get_close_matches(key, Config.model_fields, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{origin}: unknown parameter {key!r}.{hint} Valid parameters: {', '.join(Config.model_fields)}"


def _format_validation_error(error: ValidationError, origin: str) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(config)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "literal_error":
            message = f"must be one of {problem['ctx']['expected']}"
        given = problem.get("input")
        given_text = f" (got {given!r})" if not isinstance(given, dict) else ""
        lines.append(f"{origin}: parameter {key!r} {message}{given_text}")
    return "\n".join(lines)
