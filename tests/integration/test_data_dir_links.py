"""A data folder reached through a symbolic link (a clone whose ../shared links to the data): the run records the
path as the user configured it, made absolute with the link kept, and the data load through it. A ".." right after
a linked folder climbs out of the link's target; there the recorded path is the resolved one. The packaged UCI
sentences stand in for the data."""
from pathlib import Path

import pytest
import yaml

from otherdata_utils import data, run
from otherdata_utils.config import load_config
from otherdata_utils.env import DATA_DIR_ENV

UCI_ROWS = {"train": 2100, "validation": 300, "test": 600}


def recorded_data_dir(params_file: Path, output_dir: Path) -> str:
    """The data_dir a run folder's params.yaml records for `params_file`, and checks that the data load from it as
    a notebook reads them (the recorded params)."""
    config = load_config(params_file, {"output_dir": str(output_dir), "sources": ["uci_sentences"]})
    recorded = yaml.safe_load(run.prepare_run(config).read_text())["data_dir"]
    loaded = data.load_source("uci_sentences", load_config(output_dir / "params.yaml").resolved_data_dir())
    assert {split: len(rows) for split, rows in loaded.items()} == UCI_ROWS
    return recorded


@pytest.fixture
def linked_shared(tmp_path: Path, packaged_data_dir: Path) -> Path:
    """tmp/clone beside tmp/shared, a link to a folder elsewhere whose data/ links to the packaged data."""
    store = tmp_path / "disk" / "store"
    store.mkdir(parents=True)
    (store / "data").symlink_to(packaged_data_dir, target_is_directory=True)
    (tmp_path / "shared").symlink_to(store, target_is_directory=True)
    (tmp_path / "clone").mkdir()
    return tmp_path / "shared"


def test_a_relative_data_dir_through_a_linked_folder_is_recorded_as_configured(linked_shared, tmp_path):
    params = tmp_path / "clone" / "params.yaml"
    params.write_text("data_dir: ../shared/data\n")
    recorded = recorded_data_dir(params, tmp_path / "run")
    assert recorded == str(linked_shared / "data")  # the link, not /disk/store/data nor the package's folder
    assert Path(recorded).resolve() == (linked_shared / "data").resolve()


def test_a_data_dir_set_in_the_environment_through_a_link_is_recorded_as_set(linked_shared, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(linked_shared / "data"))
    params = tmp_path / "clone" / "params.yaml"
    params.write_text("run_name: linked\n")
    assert recorded_data_dir(params, tmp_path / "run") == str(linked_shared / "data")


def test_a_dotdot_after_a_linked_folder_is_recorded_where_the_file_system_goes(linked_shared, tmp_path):
    # shared/.. is disk/, the link target's parent, where spelling would say tmp/: the spelled path (tmp/data) does not
    # exist, so the run records the resolved one
    (tmp_path / "disk" / "data").symlink_to(linked_shared / "data", target_is_directory=True)
    params = tmp_path / "clone" / "params.yaml"
    params.write_text("data_dir: ../shared/../data\n")
    recorded = recorded_data_dir(params, tmp_path / "run")
    assert not (tmp_path / "data").exists()
    assert recorded == str((tmp_path / "disk" / "data").resolve())
