"""Every committed params file through `run --check`, in-process: its params, data, model and run folder pass the
pre-flight, nothing runs and nothing is written. The runner itself runs each notebook once, in tests/e2e."""
from pathlib import Path

import pytest

from otherdata_utils.__main__ import main
from otherdata_utils.env import CACHE_DIR_ENV, DATA_DIR_ENV, RUNS_DIR_ENV

REPO = Path(__file__).resolve().parents[2]
PARAMS = sorted(path.name for path in (REPO / "params").glob("*.yaml"))
# Their model is a Hugging Face Hub id: offline, the pre-flight must stop them with one line naming the model.
NEEDS_THE_HUB = {"imdb.yaml": "bert-base-uncased", "study_language_online.yaml": "cardiffnlp/twitter-xlm-roberta-base"}


@pytest.mark.parametrize("name", PARAMS)
def test_every_params_file_passes_its_pre_flight_and_writes_nothing(name, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    code = main(["run", str(REPO / "params" / name), "--check"])
    out, err = capsys.readouterr()
    if name in NEEDS_THE_HUB:
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert NEEDS_THE_HUB[name] in err
    else:
        assert code == 0, err
        assert "pre-flight passed" in out and "--check: would" in out
    assert not (tmp_path / "runs").exists()
