"""Reliability: a killed run resumes to the same result, runs are deterministic on CPU, bad input fails before a run
folder is touched with one clear line, and train/test leakage is warned about, removed and reported.

Timing keys. metrics.json holds learned values and a few that measure this machine's speed; the speed ones are
`TIMING_KEYS` (and `best_model_dir`, a path inside the run folder, is compared relative to it). Everything else must
match exactly between two CPU runs with the same params and seed.

Determinism on GPU (for the README). Deterministic everywhere: splits and caps (seeded hashes of ids), cleaning,
mixing and augmentation (seeded numpy/random), batch order (seeded samplers), the new classifier head (set_seed
before the model is built), and resume (the same batches, RNG and schedule). Not bit-exact on CUDA: the backward
pass of embeddings and some attention kernels add with atomics in no fixed order, cuBLAS may pick other algorithms
run to run, fp16/bf16 autocast and TF32 round differently, and fused AdamW differs from the CPU kernel; so losses
and weights drift by about 1e-6 relative per step and metrics can differ in the last digits (a borderline example
can flip). torch.use_deterministic_algorithms(True) with CUBLAS_WORKSPACE_CONFIG=:4096:8 removes most of it at
some speed cost; other GPU models, drivers or library versions give other numbers in any case. A GPU run therefore
reproduces its metrics to about ±0.5 point, not exactly; compare GPU runs by the mean over seeds.
"""
from __future__ import annotations

import copy
import csv
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import psutil
import pytest
import yaml
from safetensors import safe_open

from otherdata_utils import io as io_module
from otherdata_utils import folder_lock, pipeline, preflight, report, run
from otherdata_utils.config import load_config
from otherdata_utils.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]

# metrics.json keys (and history rows) that measure this machine's speed, not what the run learned.
TIMING_KEYS = frozenset({"train_runtime_s", "train_examples_per_second", "train_tokens_per_second",
                         "eval_examples_per_second", "eval_tokens_per_second"})
# metrics.json keys that hold a path into the run folder: equal runs in two folders differ only in the prefix.
PATH_KEYS = frozenset({"best_model_dir"})


def comparable(value, run_dir: Path):
    """metrics.json / history.json content without timing keys, with run-folder paths made relative."""
    if isinstance(value, dict):
        return {key: (os.path.relpath(item, run_dir) if key in PATH_KEYS and item else comparable(item, run_dir))
                for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [comparable(item, run_dir) for item in value]
    return value


def cli_env(**extra: str) -> dict[str, str]:
    """Offline, one thread per process (two shared cores: oversubscription stalls), unbuffered progress lines."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otherdata_utils", *args], cwd=REPO, env=cli_env(), text=True,
                          capture_output=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): equal snapshots mean an untouched folder. The
    runner's bookkeeping is left out: the lock names whichever process holds the folder now, and the progress log
    gains a line per run; neither is a result a failed run could spoil."""
    bookkeeping = {folder_lock.LOCK_FILE, RunFolder(folder).progress_log.name}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
            if p.name not in bookkeeping}


def load_weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


# --- 1, 2. uninterrupted runs: determinism, and the reference a resumed run must reach --------------------------------

# The CI study with 45 training steps and a checkpoint every 5; the runner and the pipeline script get the same.
STUDY = {"max_train_samples": 240, "num_train_epochs": 3, "save_strategy": "steps", "save_steps": 5}

PIPELINE_SCRIPT = """
import sys
from otherdata_utils import pipeline
from otherdata_utils.config import load_config
from otherdata_utils.runs import RunFolder
for out, seed in zip(sys.argv[2::2], sys.argv[3::2]):
    config = load_config(sys.argv[1], {"output_dir": out, "seed": int(seed)})
    pipeline.prepare_data(config)
    pipeline.build_training_set(config)
    pipeline.finetune(config)
    pipeline.evaluate_splits(config)
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (tiny model, tokenised splits) for the runs of this module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache_dir) -> dict[str, Path]:
    """Data, mixing, fine-tuning and evaluation on CPU, uninterrupted: seed 42 then seed 7 in one process, seed 42
    again in a second process (started alongside) with another PYTHONHASHSEED."""
    root = tmp_path_factory.mktemp("uninterrupted")
    params = {**yaml.safe_load((REPO / "params/ci.yaml").read_text()), **STUDY, "cache_dir": str(cache_dir)}
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    folders = {name: root / name for name in ("first", "other_seed", "again")}
    plan = {"1": ["first", "42", "other_seed", "7"], "2": ["again", "42"]}
    processes = [subprocess.Popen([sys.executable, "-c", PIPELINE_SCRIPT, str(params_file),
                                   *[str(folders[item]) if item in folders else item for item in runs]],
                                  cwd=REPO, env=cli_env(PYTHONHASHSEED=hash_seed), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for hash_seed, runs in plan.items()]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    return folders


@pytest.mark.slow
def test_same_params_and_seed_give_identical_metrics_and_another_seed_does_not(uninterrupted):
    metrics = {name: comparable(json.loads((folder / "metrics.json").read_text()), folder)
               for name, folder in uninterrupted.items()}
    assert set(metrics["first"]) == {"train", "validation", "test"}
    assert metrics["again"] == metrics["first"]
    assert (uninterrupted["again"] / "predictions/test.csv").read_bytes() == \
        (uninterrupted["first"] / "predictions/test.csv").read_bytes()
    assert metrics["other_seed"]["validation"]["loss"] != metrics["first"]["validation"]["loss"]
    assert metrics["other_seed"] != metrics["first"]


# --- 1. kill and resume ----------------------------------------------------------------------------------------------

def kill_after_first_checkpoint(args: list[str], run_dir: Path, timeout: float = 420) -> None:
    """Start the runner and SIGKILL it and its kernel as soon as a complete checkpoint exists (a machine dying)."""
    process = subprocess.Popen([sys.executable, "-m", "otherdata_utils", *args, "--out", str(run_dir)], cwd=REPO,
                               env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not list((run_dir / "training" / "checkpoints").glob("step-*/loop_state.json")):
            if process.poll() is not None:
                pytest.fail(f"the run ended (exit code {process.returncode}) before it wrote a checkpoint")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        # The runner, and the kernel papermill started in a session of its own; all of them started by this test.
        children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        for pid in [process.pid] + [child.pid for child in children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=60)
        psutil.wait_procs(children, timeout=60)


def assert_every_complete_looking_file_is_complete(run_dir: Path) -> None:
    """Files under their final names parse; temporary ones are hidden (.name…tmp) or named *.partial.ipynb."""
    for path in run_dir.rglob("*"):
        relative = path.relative_to(run_dir)
        if any(part.startswith(".") for part in relative.parts) or path.name.endswith(".partial.ipynb"):
            continue
        if path.suffix in (".json", ".ipynb"):
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".safetensors":
            with safe_open(path, framework="pt") as tensors:
                assert list(tensors.keys()), f"{relative} holds no tensors"
        elif path.is_dir() and path.parent.name == "checkpoints":
            assert (path / "loop_state.json").is_file(), f"{relative} looks like a checkpoint but is not complete"


@pytest.mark.slow
def test_a_killed_run_resumes_with_the_same_command_to_the_same_weights_and_metrics(uninterrupted, cache_dir,
                                                                                       tmp_path):
    """The runner runs 03_finetune (which prepares data and mixes itself), killed mid-training; the same command
    resumes training from the last checkpoint and must end where the uninterrupted seed-42 run ended. (Skipping
    notebooks that finished is shown by the disk-full test: one notebook here keeps the test to two kernels.)"""
    args = ["run", "params/ci.yaml", "--notebooks", "03_finetune", "--set", f"cache_dir={cache_dir}",
            *[item for key, value in STUDY.items() for item in ("--set", f"{key}={value}")]]
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(args, killed)
    assert json.loads((killed / "run_state.json").read_text()) == {"notebooks_done": [], "failed": None}
    assert not (killed / "notebooks" / "03_finetune.ipynb").exists()  # only the .partial.ipynb copy
    assert not (killed / "report.md").exists()
    assert_every_complete_looking_file_is_complete(killed)

    resumed = run_cli(*args, "--out", str(killed))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {killed}: no notebook done before; training resumes from step-" in resumed.stdout

    whole = uninterrupted["first"]
    whole_weights, resumed_weights = load_weights(whole / "model"), load_weights(killed / "model")
    assert whole_weights.keys() == resumed_weights.keys()
    assert max((whole_weights[k] - resumed_weights[k]).abs().max().item() for k in whole_weights) <= 1e-6
    assert comparable(json.loads((killed / "metrics.json").read_text()), killed)["train"] == \
        comparable(json.loads((whole / "metrics.json").read_text()), whole)["train"]
    assert comparable(json.loads((killed / "training/history.json").read_text()), killed) == \
        comparable(json.loads((whole / "training/history.json").read_text()), whole)
    assert json.loads((killed / "run_state.json").read_text()) == {"notebooks_done": ["03_finetune"], "failed": None}
    assert not list(killed.rglob("*.partial.ipynb")) and not list(killed.rglob("*.tmp"))
    assert (killed / "report.md").is_file() and (killed / "notebooks" / "03_finetune.ipynb").is_file()


# --- 3. bad input: one clear line, before the run folder is touched ---------------------------------------------------

@pytest.fixture(scope="module")
def real_rows(uci_sentences) -> list[dict]:
    """60 real UCI sentences: 10 negative and 10 positive from each of amazon, imdb and yelp."""
    train = uci_sentences["train"].to_pandas()
    picked = train.groupby(["domain", "label"]).head(10)
    return [{"text": r.text, "label": int(r.label), "domain": r.domain} for r in picked.itertuples()]


def write_csv(path: Path, rows: list[dict], columns=("text", "label", "domain")) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[key] for key in ("text", "label", "domain")])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


class Inputs:
    """A good params file over a real CSV, the earlier run folder it made, and makers of bad variants."""

    def __init__(self, folder: Path, rows: list[dict], model_dir: Path, cache: Path) -> None:
        self.folder, self.rows = folder, rows
        self.good_csv = write_csv(folder / "good.csv", rows)
        self.base = {"run_name": "earlier", "sources": [{"path": str(self.good_csv)}], "target_domain": "yelp",
                     "model_name_or_path": str(model_dir), "cache_dir": str(cache), "max_seq_length": 32,
                     "notebooks": ["00_setup", "01_data"], "quiet": True}
        self.run_dir = folder / "runs" / "earlier"

    def for_case(self, case: str) -> "Inputs":
        """The same inputs writing their bad variants into a folder of their own."""
        made = copy.copy(self)
        made.folder = self.folder / case
        made.folder.mkdir(exist_ok=True)
        return made

    def params(self, **changes) -> Path:
        path = self.folder / "case.yaml"
        path.write_text(yaml.safe_dump({**self.base, **changes}))
        return path

    def raw_params(self, text: str) -> Path:
        path = self.folder / "case.yaml"
        path.write_text(text)
        return path

    def source(self, name: str, content: bytes, **options) -> Path:
        path = self.folder / name
        path.write_bytes(content)
        return self.params(sources=[{"path": str(path), **options}])

    def csv_rows(self, rows: list[dict], columns=("text", "label", "domain")) -> bytes:
        return write_csv(self.folder / "scratch.csv", rows, columns).read_bytes()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, real_rows, tiny_model_dir, cache_dir) -> Inputs:
    """The earlier run: params.yaml, run_state.json (00_setup and 01_data done), clean data, reports, report.md."""
    made = Inputs(tmp_path_factory.mktemp("inputs"), real_rows, tiny_model_dir, cache_dir)
    config = load_config(made.params(), {"output_dir": str(made.run_dir)})
    run.prepare_run(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
        pipeline.prepare_data(config)
    preflight.write_run_state(made.run_dir, ["00_setup", "01_data"])
    report.write_report(made.run_dir)
    return made


def _with(rows: list[dict], row: int, **changes) -> list[dict]:
    return [{**r, **changes} if i == row else r for i, r in enumerate(rows)]


# Each case: a maker of the bad input (a params file) and fragments the one-line message must hold.
BAD_INPUTS = {
    "missing_text_column": (
        lambda c: c.source("bad.csv", c.csv_rows(c.rows, ("sentence", "label", "domain"))),
        ["bad.csv: no column 'text'", "set text_column"]),
    "missing_label_column": (
        lambda c: c.source("bad.csv", c.csv_rows(c.rows, ("text", "sentiment", "domain"))),
        ["bad.csv: no column 'label'", "set label_column"]),
    "unknown_label_value": (
        lambda c: c.source("bad.csv", c.csv_rows(_with([{**r, "label": ["neg", "pos"][r["label"]]} for r in c.rows],
                                                       6, label="maybe")), label_names=["neg", "pos"]),
        ["bad.csv, line 8: unknown label 'maybe'", "label_map"]),
    "all_texts_empty": (
        lambda c: c.source("bad.csv", c.csv_rows([{**r, "text": ""} for r in c.rows])),
        ["bad.csv: every text is empty", "text_column"]),
    "non_utf8_bytes": (  # a Latin-1 "é" in row 5
        lambda c: c.source("bad.csv", c.csv_rows(_with(c.rows, 4, text="PLACEHOLDER"))
                           .replace(b"PLACEHOLDER", b"caf\xe9 au lait")),
        ["bad.csv: byte", "(line 6) is not valid utf-8", "set encoding"]),
    "nan_label": (
        lambda c: c.source("bad.jsonl", "\n".join(json.dumps(r) for r in _with(c.rows, 3, label=float("nan")))
                           .encode()),
        ["bad.jsonl, line 4: empty label in column 'label'"]),
    "one_class_only": (
        lambda c: c.source("bad.csv", c.csv_rows([{**r, "label": 1} for r in c.rows])),
        ["bad.csv", "holds only class '1'", "two classes or more"]),
    "empty_file": (
        lambda c: c.source("bad.csv", b""),
        ["bad.csv: empty file"]),
    "one_megabyte_text": (
        lambda c: c.source("bad.csv", c.csv_rows(_with(c.rows, 1, text="word " * 200_000))),
        ["bad.csv, line 3: text is 1,000,000 characters, over max_text_chars=100,000"]),
    "malformed_yaml": (
        lambda c: c.raw_params("sources: [uci_sentences\nlearning_rate: 1e-3\n"),
        ["case.yaml", "YAML syntax error"]),
    "unknown_parameter": (
        lambda c: c.params(learnin_rate=1e-3),
        ["case.yaml", "unknown parameter 'learnin_rate'", "Did you mean 'learning_rate'"]),
    "wrong_type": (
        lambda c: c.params(num_train_epochs="many"),
        ["case.yaml", "parameter 'num_train_epochs'", "(got 'many')"]),
    "negative_learning_rate": (
        lambda c: c.params(learning_rate=-1e-4),
        ["case.yaml", "parameter 'learning_rate' must be > 0 (got -0.0001)"]),
    "data_file_missing": (
        lambda c: c.params(sources=[{"path": str(c.folder / "missing.csv")}]),
        ["missing.csv: file not found"]),
    "named_source_unknown": (
        lambda c: c.params(sources=["imbd"]),
        ["unknown data source 'imbd'", "Did you mean 'imdb'?"]),
    "model_path_missing": (
        lambda c: c.params(model_name_or_path=str(c.folder / "no-such-model")),
        ["model_name_or_path=", "no-such-model", "no model folder at"]),
    "target_domain_absent": (
        lambda c: c.params(target_domain="mars"),
        ["parameter 'target_domain': 'mars' is not a domain of the training data of good.csv",
         "amazon, imdb, yelp"]),
    "pretrain_domain_absent": (
        lambda c: c.params(pretrain_domains=["mars"], pretrain_steps=10),
        ["parameter 'pretrain_domains' names ['mars'], which are not domains of the training data of good.csv",
         "(domains: amazon, imdb, yelp)"]),
    "other_data_params_for_an_existing_run_folder": (
        lambda c: c.params(max_test_samples=50),
        ["holds a run with other parameters (max_test_samples: None -> 50), which its prepared data were made with",
         "new --out", "--fresh"]),
}


def run_in_process(capfd, argv: list[str]) -> tuple[int, str]:
    code = run.run_command(argv)
    return code, capfd.readouterr().err


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_before_the_run_folder_is_touched_with_one_clear_line(case, inputs, capfd):
    make, fragments = BAD_INPUTS[case]
    before = snapshot(inputs.run_dir)
    capfd.readouterr()
    code, err = run_in_process(capfd, [str(make(inputs.for_case(case))), "--out", str(inputs.run_dir)])
    print(f"{case}: {err.strip()}")  # pytest -rP shows every message as users see it
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert snapshot(inputs.run_dir) == before


CLI_CASES = ("unknown_label_value", "model_path_missing", "negative_learning_rate")


@pytest.fixture(scope="module")
def cli_results(inputs) -> dict[str, tuple[subprocess.CompletedProcess, bool]]:
    """The command line on three bad inputs, started together; and whether the run folder stayed untouched."""
    before = snapshot(inputs.run_dir)
    commands = {case: [sys.executable, "-m", "otherdata_utils", "run", str(BAD_INPUTS[case][0](inputs.for_case(case))),
                       "--out", str(inputs.run_dir)] for case in CLI_CASES}
    processes = {case: subprocess.Popen(command, cwd=REPO, env=cli_env(), text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE) for case, command in commands.items()}
    results = {}
    for case, process in processes.items():
        out, err = process.communicate(timeout=300)
        results[case] = subprocess.CompletedProcess(commands[case], process.returncode, out, err)
    untouched = snapshot(inputs.run_dir) == before
    return {case: (result, untouched) for case, result in results.items()}


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_input_through_the_command_line_exits_2_with_one_line_and_no_traceback(case, cli_results):
    result, untouched = cli_results[case]
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert all(fragment in lines[0] for fragment in BAD_INPUTS[case][1])
    assert "pre-flight passed" not in result.stdout
    assert untouched


def test_changed_data_in_an_existing_run_folder_is_refused(inputs, capfd, tmp_path):
    data_file = write_csv(tmp_path / "mine.csv", inputs.rows)
    params = tmp_path / "mine.yaml"
    params.write_text(yaml.safe_dump({**inputs.base, "sources": [{"path": str(data_file)}]}))
    run_dir = tmp_path / "run"
    config = load_config(params, {"output_dir": str(run_dir)})
    run.prepare_run(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.prepare_data(config)
    preflight.write_run_state(run_dir, ["00_setup"])
    write_csv(data_file, _with(inputs.rows, 0, text="An edited first sentence."))
    before = snapshot(run_dir)
    capfd.readouterr()
    code, err = run_in_process(capfd, [str(params), "--out", str(run_dir)])
    assert code == 2
    assert "the data changed since this run folder was made (source(s) mine.csv" in err and err.count("\n") == 1
    assert snapshot(run_dir) == before


def test_fresh_refuses_to_delete_a_folder_that_holds_no_run(inputs, capfd, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("\\chapter{Introduction}\n")
    capfd.readouterr()
    code, err = run_in_process(capfd, [str(inputs.params()), "--out", str(precious), "--fresh"])
    assert code == 2 and "holds no run" in err and "not deleted" in err
    assert (precious / "chapter1.tex").read_text() == "\\chapter{Introduction}\n"


class _DiskFull:
    """A file whose writes fail with ENOSPC after the first 100 characters, as on a full disk."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, text: str) -> int:
        self.handle.write(text[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_disk_full_while_writing_the_report_keeps_the_old_report_and_says_so(inputs, capfd, monkeypatch, tmp_path):
    run_dir = tmp_path / "earlier"
    shutil.copytree(inputs.run_dir, run_dir)  # every notebook done: the runner only writes the report
    run.prepare_run(load_config(inputs.params(), {"output_dir": str(run_dir)}))  # params.yaml names the copy
    (run_dir / "report.md").write_text("# the earlier report\n")
    before = snapshot(run_dir)

    def full_disk_open(path, *args, **kwargs):
        handle = open(path, *args, **kwargs)
        return _DiskFull(handle) if Path(path).name.startswith(".report.md.") else handle

    monkeypatch.setattr(io_module, "open", full_disk_open, raising=False)
    capfd.readouterr()
    code = run.run_command([str(inputs.params()), "--out", str(run_dir)])
    out, err = capfd.readouterr()
    print(f"disk_full_writing_report: {err.strip()}")
    assert f"resuming {run_dir}: 00_setup, 01_data done before" in out and ".ipynb" not in out  # nothing re-run
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"[earlier] FAILED writing report.md: [Errno 28] could not write {run_dir / 'report.md'}: No space " \
           "left on device; every notebook finished: free space and re-run the same command" in err
    assert snapshot(run_dir) == before  # the old report whole, no temporary file left

    monkeypatch.undo()
    code, _ = run_in_process(capfd, [str(inputs.params()), "--out", str(run_dir)])
    assert code == 0 and (run_dir / "report.md").read_text().startswith("# Run `earlier`")


# --- 5. leakage ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("remove", [True, False], ids=["removed", "kept"])
def test_train_texts_shared_with_test_are_warned_about_removed_and_reported(real_rows, tmp_path, remove):
    rows = [{**row, "split": "validation" if i % 6 == 0 else "test" if i % 6 == 1 else "train"}
            for i, row in enumerate(real_rows)]
    tested = [row for row in rows if row["split"] == "test"][:4]
    rows += [{**row, "split": "train"} for row in tested]  # four test sentences copied into train
    path = tmp_path / "leaky.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "domain", "split"])
        writer.writeheader()
        writer.writerows(rows)
    config = load_config(overrides={"sources": [{"path": str(path)}], "output_dir": str(tmp_path / "run"),
                                    "remove_leakage": remove, "quiet": True})

    with pytest.warns(UserWarning, match="leakage: 4 training rows share a text with validation or test; " +
                      ("removed from train" if remove else r"kept in train \(remove_leakage: false\)")):
        prepared = pipeline.prepare_data(config)
    train_texts = set(prepared.dataset["train"]["text"][:])
    assert all((row["text"] in train_texts) != remove for row in tested)
    run.prepare_run(config)
    text = report.write_report(tmp_path / "run").read_text()
    data_section = text.split("## Data")[1]
    assert "4 distinct texts occur in both train and test" in data_section
    if remove:
        assert "Dropped 4 train rows whose text also occurs in validation or test" in data_section
    else:
        assert "Leakage was reported but not removed" in data_section


def test_a_grown_study_or_a_new_learning_rate_reruns_the_notebooks_after_the_data_steps(inputs, tmp_path):
    run_dir = tmp_path / "grown"
    config = load_config(inputs.params(), {"output_dir": str(run_dir)})
    run.prepare_run(config)
    preflight.write_run_state(run_dir, ["00_setup", "01_data", "07_few_shot_mixing"])
    notebooks = ["00_setup", "01_data", "07_few_shot_mixing"]
    same = preflight.plan_run(config.replace(notebooks=notebooks), None)
    assert same.notebooks == [] and same.changed == {}
    grown = preflight.plan_run(config.replace(notebooks=notebooks, learning_rate=1e-3,
                                              replicates={"seeds": [1, 2]}), None)
    assert grown.resuming and grown.done == ["00_setup", "01_data"] and grown.notebooks == ["07_few_shot_mixing"]
    assert set(grown.changed) == {"learning_rate", "replicates"}
