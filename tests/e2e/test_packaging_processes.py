"""Packaging checked in fresh processes: what predict and serve import, predicting without the training side or
pyarrow, make's install commands, and the run command without its extra."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otherdata_utils.modeling import build_tiny_random_model

REPO_ROOT = Path(__file__).resolve().parents[2]


# The `run` extra's notebook and plotting machinery, which importing the serving step must not load.
RUN_MACHINERY = ("papermill", "nbformat", "nbconvert", "matplotlib", "ipykernel", "jupyter_client")


def test_importing_predict_and_serve_loads_no_notebook_or_plotting_library():
    code = ("import json, sys; import otherdata_utils.serve, otherdata_utils.predictor; "
            f"print(json.dumps(sorted(m for m in {list(RUN_MACHINERY)!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# The training side, and this project's modules of it, as a `[serve]` install lacks them: each blocked name fails to
# import, as if not installed, and transformers sees it as absent too (it asks importlib.util.find_spec).
LEAN_CHILD = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None
import otherdata_utils.serve
from otherdata_utils.predictor import Predictor, predict_file
answers = Predictor.load(sys.argv[1]).predict(["a fine day", "the worst film"])
done = predict_file(sys.argv[1], sys.argv[2], sys.argv[3], quiet=True)
training = ("data", "modeling", "train", "pipeline", "metrics", "mix", "clean")
print(json.dumps({{"labels": [a["label"] for a in answers], "rows": done.rows,
                   "loaded": sorted(m for m in {blocked!r} if sys.modules.get(m) is not None),
                   "package": sorted(m for m in sys.modules if m.split(".")[1:2] and m.split(".")[0] ==
                                     "otherdata_utils" and m.split(".")[1] in training)}}))
"""


def test_predict_and_serve_import_and_predict_without_the_training_side(tmp_path):
    model = build_tiny_random_model(tmp_path / "tiny")  # labels LABEL_0 / LABEL_1
    texts = tmp_path / "texts.csv"
    texts.write_text("text\ngood\nbad\nfine\n", encoding="utf-8")
    blocked = ["datasets", "accelerate", "pandas", "pyarrow", "scipy", "sklearn", "matplotlib"]
    done = subprocess.run([sys.executable, "-c", LEAN_CHILD.format(blocked=blocked), str(model), str(texts),
                           str(tmp_path / "out.jsonl")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["labels"]) <= {"LABEL_0", "LABEL_1"} and len(result["labels"]) == 2
    assert result["rows"] == 3 and len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert result["loaded"] == [] and result["package"] == []


def test_parquet_without_pyarrow_is_one_error_naming_the_file_and_the_fix(tmp_path):
    code = ("import sys; sys.modules['pyarrow'] = None; from otherdata_utils.predictor import read_texts, "
            "PredictInputError\ntry:\n    read_texts(sys.argv[1])\nexcept PredictInputError as error:\n"
            "    print(error)")
    path = tmp_path / "texts.parquet"
    path.write_bytes(b"PAR1")
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == (f"{path}: reading parquet needs pyarrow, which this install lacks: pip install "
                                   "pyarrow, or save the file as CSV or JSONL")


def make_dry_run(target: str, **variables: str) -> tuple[str, str]:
    """(commands, database) of `make -n -p target` with a fresh venv stamp, run from the repository root."""
    overrides = [f"{name}={value}" for name, value in variables.items()]
    # what the Makefile sets, not what this shell had already
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "OTHERDATA_DATA_DIR", "MAKEFLAGS")}
    done = subprocess.run(["make", "-n", "-p", "-W", "pyproject.toml", target, *overrides], cwd=REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=60, check=True)
    commands = [line for line in done.stdout.splitlines() if line.startswith(".venv/bin/python -m pip install")]
    return "\n".join(commands), done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_installs_per_target_with_the_constraints_and_goes_offline_only_with_a_data_folder(tmp_path):
    run_commands, with_data = make_dry_run("run", OTHERDATA_DATA_DIR=str(tmp_path))
    assert '-c constraints.txt -e ".[run]"' in run_commands
    test_commands, without_data = make_dry_run("test", OTHERDATA_DATA_DIR=str(tmp_path / "absent"))
    assert '-c constraints.txt -e ".[run,dev,studies,serve,augment,tracking,ray]"' in test_commands
    assert re.search(r"^HF_HUB_OFFLINE (\?|:)?= 1$", with_data, flags=re.MULTILINE)
    assert not re.search(r"^HF_HUB_OFFLINE ", without_data, flags=re.MULTILINE)
    assert f"OTHERDATA_CONSTRAINTS := {REPO_ROOT / 'constraints.txt'}" in with_data
    unpinned, _ = make_dry_run("run", CONSTRAINTS="")
    assert re.search(r'--quiet +-e "\.\[run\]"', unpinned) and "-c " not in unpinned


def test_run_command_without_the_run_extra_names_the_extra_to_install():
    # None in sys.modules makes `import papermill` fail as if it were not installed
    code = ("import sys; sys.modules['papermill'] = None; from otherdata_utils.__main__ import main; "
            "sys.exit(main(['run', 'params/ci.yaml']))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m otherdata_utils run: error: needs the `run` extra (no module named 'papermill'): "
        "from a clone of this repository, pip install -e \".[run]\" -c constraints.txt"]
