"""The commands the README shows, typed where a user types them: the repo root, notebooks/ or a folder of their own,
with a params file kept beside its own data. CI-sized: the tiny random model, 00_setup and 01_data only."""
import csv
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from otherdata_utils import preflight
from otherdata_utils.config import load_config

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CSV_ROWS = 60


@pytest.fixture(scope="module")
def own_params(tmp_path_factory, data_dir) -> Path:
    """mine/params.yaml naming mine/data/reviews.csv (real Yelp sentences, 1/5 stars) by a relative path, beside a
    named source read from the data directory."""
    mine = tmp_path_factory.mktemp("user") / "mine"
    (mine / "data").mkdir(parents=True)
    lines = (data_dir / "uci_sentences" / "yelp_labelled.txt").read_text(encoding="utf-8").splitlines()[:CSV_ROWS]
    with open(mine / "data" / "reviews.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "stars"])
        writer.writerows([text, "5" if label == "1" else "1"] for text, label in (line.split("\t") for line in lines))
    params = {**yaml.safe_load((REPO / "params" / "ci.yaml").read_text()), "run_name": "mine", "target_domain": "shop",
              "max_train_samples": None, "max_eval_samples": None, "max_test_samples": None,
              "sources": ["uci_sentences:amazon",
                          {"path": "data/reviews.csv", "text_column": "review", "label_column": "stars",
                           "label_map": {"1": 0, "5": 1}, "label_names": ["neg", "pos"], "domain": "shop"}]}
    (mine / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return mine / "params.yaml"


def user_env(data_dir: Path) -> dict:
    """The environment of a fresh shell: no OTHERDATA_DATA_DIR where the data lie where it defaults to."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if data_dir.resolve() == (REPO.parent / "shared" / "data").resolve():
        env.pop("OTHERDATA_DATA_DIR", None)
    return env


def where(tmp_path: Path, cwd: str) -> Path:
    folder = {"repo": REPO, "notebooks": REPO / "notebooks", "elsewhere": tmp_path / "elsewhere"}[cwd]
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.parametrize("cwd", ["repo", "notebooks", "elsewhere"])
def test_preflight_reads_a_csv_named_relative_to_its_params_file_from_any_folder(own_params, tmp_path, monkeypatch,
                                                                                   cwd):
    monkeypatch.chdir(where(tmp_path, cwd))
    config = load_config(own_params)
    fingerprint, rows = preflight.check_data(config)
    assert sum(split["reviews.csv"]["rows"] for split in fingerprint.values()) == CSV_ROWS
    assert rows == 1000 + CSV_ROWS


@pytest.mark.parametrize("cwd", ["repo", "elsewhere"])
def test_runner_runs_setup_and_data_of_a_params_file_in_its_own_folder(own_params, data_dir, tmp_path, cwd):
    # from the repo root with an absolute --out; from another folder with one relative to that folder
    folder = where(tmp_path, cwd)
    out = str(tmp_path / "run") if cwd == "repo" else "run"
    result = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", str(own_params), "--out", out,
                             "--notebooks", "00_setup", "01_data"], cwd=folder, env=user_env(data_dir), text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, f"runner failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    run_dir = tmp_path / "run" if cwd == "repo" else folder / "run"
    assert f"pre-flight passed: {1000 + CSV_ROWS:,} rows" in result.stdout
    assert sorted(p.name for p in (run_dir / "notebooks").glob("*.ipynb")) == ["00_setup.ipynb", "01_data.ipynb"]
    assert (run_dir / "data").is_dir() and (run_dir / "environment.json").is_file()
    recorded = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert recorded["sources"][1]["path"] == str(own_params.parent / "data" / "reviews.csv")
    # the data dir as the runner was given it, made absolute but not resolved: a symlinked ../shared stays the link
    given = user_env(data_dir).get("OTHERDATA_DATA_DIR") or REPO.parent / "shared" / "data"
    assert Path(recorded["data_dir"]) == Path(given)
    raw = json.loads((run_dir / "reports" / "data_fingerprint.json").read_text())["raw"]
    assert sum(split["reviews.csv"]["rows"] for split in raw.values()) == CSV_ROWS  # 01_data read the CSV


@pytest.mark.parametrize("cwd", ["repo", "notebooks"])
def test_papermill_command_line_runs_setup_with_a_params_file_named_from_the_repo_root(data_dir, tmp_path, cwd):
    folder = where(tmp_path, cwd)
    notebook = "notebooks/00_setup.ipynb" if cwd == "repo" else "00_setup.ipynb"
    overrides = json.dumps({"seed": 1, "run_name": "ci_seed1", "runs_dir": str(tmp_path / "runs")})
    result = subprocess.run([str(BIN / "papermill"), notebook, str(tmp_path / "00_setup.ipynb"),
                             "-p", "params_file", "params/ci.yaml", "-p", "overrides", overrides],
                            cwd=folder, env=user_env(data_dir), text=True, capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    environment = json.loads((tmp_path / "runs" / "ci_seed1" / "environment.json").read_text())
    assert environment["python"] == platform.python_version()  # this checkout's environment ran the kernel
    executed = json.loads((tmp_path / "00_setup.ipynb").read_text())
    printed = "".join("".join(output.get("text", "")) for cell in executed["cells"]
                      for output in cell.get("outputs", []))
    assert "run 'ci_seed1': model 'tiny-random'" in printed
