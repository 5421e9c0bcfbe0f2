"""Shared fixtures. Hugging Face libraries must never wait on the network in tests: set offline first."""
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Iterator  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    import datasets

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (OTHERDATA_DATA_DIR, else ../shared/data beside the repo)."""
    root = Path(os.environ.get("OTHERDATA_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (root / "README.md").is_file():
        pytest.fail(f"real data not found at {root}: set OTHERDATA_DATA_DIR to a copy laid out like shared/data")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT (2 layers, hidden 128) with the packaged tokenizer, built once per session."""
    from otherdata_utils.modeling import build_tiny_random_model

    return build_tiny_random_model(tmp_path_factory.mktemp("models") / "tiny-random-bert")


@pytest.fixture(scope="session")
def uci_sentences(data_dir: Path) -> "datasets.DatasetDict":
    """The 3,000 UCI labelled sentences (amazon, imdb, yelp) as data.load_source gives them: 2,100/300/600 rows."""
    from otherdata_utils import data

    return data.load_source("uci_sentences", data_dir)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests: on two shared cores, two OpenMP threads spinning against other
    processes run 2-4x slower than one. Modules opt in with `pytestmark = pytest.mark.usefixtures(...)`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def finetuned_through_pipeline():
    """Runs a config's data, mixing and fine-tuning steps in-process, as notebooks 01-03 do; returns the config."""
    from otherdata_utils import pipeline

    def run_steps(run):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
            pipeline.prepare_data(run)
        pipeline.build_training_set(run)
        pipeline.finetune(run)
        return run

    return run_steps
