"""Shared fixtures. Hugging Face libraries must never wait on the network in tests: set offline first. Under
pytest-xdist (`make test` runs a worker per core) each worker gets its share of the threads, set before torch loads."""
import os
import shutil
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The thread variables as the shell set them, before a worker's share replaces them (`all_cores` restores them).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SHELL_THREADS = {name: os.environ.get(name) for name in THREAD_VARIABLES}


def worker_threads() -> int | None:
    """The threads one pytest-xdist worker may use: the cores split among the workers (at least one), or fewer where
    OMP_NUM_THREADS asks for fewer (nbval's pinned one thread). None outside a worker: a serial run keeps every core.
    Two workers that each spin an OpenMP thread per core oversubscribe the cores and run 5-20x slower than one
    thread each, and the processes a test starts (the runner's kernels, papermill, serve, Ray) would do the same."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not os.environ.get("PYTEST_XDIST_WORKER") or not workers:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // int(workers))
    requested = (SHELL_THREADS["OMP_NUM_THREADS"] or "").strip()
    return min(share, int(requested)) if requested.isdigit() and int(requested) > 0 else share


WORKER_THREADS = worker_threads()
if WORKER_THREADS is not None:
    # in the environment, so that every process a test starts inherits the share; torch itself in pytest_configure
    os.environ.update({name: str(WORKER_THREADS) for name in THREAD_VARIABLES})

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402
from shared_data import MISSING_DATA, data_required, shared_data_root  # noqa: E402

if TYPE_CHECKING:
    import datasets

    from otherdata_utils.runs import RunFolder

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    if WORKER_THREADS is not None:
        import torch

        torch.set_num_threads(WORKER_THREADS)  # torch may have been imported before this conftest set the variables


@pytest.fixture
def all_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread variables as the shell set them, for a test of how work is laid out over the machine's cores: an
    xdist worker's share (one thread of two cores) would make it skip, or lay out one Ray worker instead of two."""
    for name, value in SHELL_THREADS.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` once per test session, however many xdist workers ask: the first builds under a lock while the
    others wait on it, then all read the same folder, `name` in the temp folder the session's processes share (an
    xdist worker's own is one level down). A build that fails leaves no mark: the next worker that asks tries again,
    and reports its own failure."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    with FileLock(str(root / f"{name}.lock")):
        if not (root / f"{name}.done").exists():
            build(root / name)
            (root / f"{name}.done").touch()
    return root / name


@pytest.fixture(scope="session")
def once_per_session(tmp_path_factory: pytest.TempPathFactory):
    """`build_once` for session fixtures in test modules: once_per_session(name, build) -> the built folder."""
    return lambda name, build: build_once(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real data (all ten sets); without it the test is skipped, or fails where data is required."""
    root = shared_data_root()
    if not (root / "README.md").is_file():
        message = f"{MISSING_DATA} at {root}"
        if data_required():
            pytest.fail(f"{message} (OTHERDATA_REQUIRE_DATA or CI is set): set OTHERDATA_DATA_DIR to a copy laid "
                        "out like shared/data")
        pytest.skip(message)
    return root


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One line: how many tests the missing shared data skipped, and how to get it."""
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple) and MISSING_DATA in str(report.longrepr[2])]
    if skipped:
        from otherdata_utils.data.named import NAMED_SOURCES, find_copy

        root = shared_data_root()
        missing = [named.name for named in NAMED_SOURCES.values() if find_copy(named, root).kind == "missing"]
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped: {MISSING_DATA} at {root} (missing: {', '.join(missing)}); get them with "
            "`python -m otherdata_utils data fetch NAME...` (sources with a Hub copy; `data list` shows each "
            "source's origin) or set OTHERDATA_DATA_DIR to a copy laid out like shared/data", yellow=True)


@pytest.fixture(scope="session")
def packaged_data_dir() -> Path:
    """A data dir holding only the UCI sentences packaged with otherdata_utils (laid out like shared/data), for tests
    that read no other data set: they run without a data folder."""
    from otherdata_utils.data.named import EMBEDDED_DIR

    return EMBEDDED_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT (2 layers, hidden 128) with the packaged tokenizer, built once per session
    (by one xdist worker: the others read the same folder)."""
    from otherdata_utils.modeling import build_tiny_random_model

    return build_once(tmp_path_factory, "tiny-random-bert", build_tiny_random_model)


@pytest.fixture(scope="session")
def uci_sentences() -> "datasets.DatasetDict":
    """The 3,000 UCI labelled sentences (amazon, imdb, yelp) as data.load_source gives them: 2,100/300/600 rows.
    Read from the copy packaged with otherdata_utils, so no data folder is needed."""
    from otherdata_utils import data

    return data.load_source("uci_sentences", None)


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


# params/ci.yaml cut to seconds: 60 training rows, one epoch, 16 tokens (so that the longest texts are truncated)
SMALL_RUN = {"run_name": "small", "max_seq_length": 16, "num_train_epochs": 1, "max_train_samples": 60,
             "max_eval_samples": 30, "max_test_samples": 60, "quiet": True, "notebooks": ["04_evaluate"]}


@pytest.fixture(scope="session")
def small_run_folder(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, packaged_data_dir: Path
                     ) -> "RunFolder":
    """A run folder as notebooks 01-04 leave it (data, mixed training set, fine-tuned tiny model, metrics, figures,
    report) for params/ci.yaml at SMALL_RUN's size on the packaged UCI sentences, built once per session in-process
    (by one xdist worker: the others read the same folder). Tests that change a run folder take `small_run_copy`,
    never this one."""
    from otherdata_utils import pipeline, report, run
    from otherdata_utils.config import load_config
    from otherdata_utils.runs import RunFolder

    def build(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        config = load_config(REPO_ROOT / "params" / "ci.yaml", {
            **SMALL_RUN, "output_dir": str(folder / "small"), "data_dir": str(packaged_data_dir),
            "cache_dir": str(folder / "cache"), "model_name_or_path": str(tiny_model_dir)})
        run.prepare_run(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
            pipeline.prepare_data(config)
        pipeline.build_training_set(config)
        pipeline.finetune(config)
        pipeline.evaluate_splits(config)
        report.write_report(folder / "small")

    return RunFolder(build_once(tmp_path_factory, "small_run", build) / "small")


def copy_run_folder(source: "RunFolder", destination: Path) -> "RunFolder":
    """A copy of a run folder whose params.yaml names the copy as its output_dir, so steps run on it write there."""
    from otherdata_utils import run
    from otherdata_utils.config import load_config
    from otherdata_utils.runs import RunFolder

    shutil.copytree(source.root, destination)
    run.prepare_run(load_config(source.params, {"output_dir": str(destination)}))
    return RunFolder(destination)


@pytest.fixture(scope="session")
def copy_run():
    """`copy_run_folder`, for module fixtures that build on a copy of a session's run folder."""
    return copy_run_folder


@pytest.fixture
def small_run_copy(small_run_folder: "RunFolder", tmp_path: Path) -> "RunFolder":
    """A test's own copy of `small_run_folder`, free to change."""
    return copy_run_folder(small_run_folder, tmp_path / "small")


@pytest.fixture(scope="session", autouse=True)
def cells_in_the_test_process() -> Iterator[None]:
    """Studies run in a test train their cells in the test's process: `execution.executor: auto` would start a local
    Ray on a multi-core host where Ray is installed. Tests of Ray name `executor: ray`; tests of `auto` patch
    `ray_installed` themselves. Session-wide, so module and session fixtures that run a study (set up before any
    function-scoped fixture) run it the same way as the tests that re-plan it, with the same cell keys."""
    from otherdata_utils import execution

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "ray_installed", lambda: False)
        yield
