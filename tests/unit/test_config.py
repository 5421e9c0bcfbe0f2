"""The one config object: defaults, params files, overrides, and one clear error per bad value."""
import ast
import json
from pathlib import Path

import pytest
import yaml

from otherdata_utils.config import (
    Config,
    ConfigError,
    SourceSpec,
    load_config,
    project_root,
)
from otherdata_utils.env import PARAMS_OVERLAY_ENV
from otherdata_utils.params_text import parse_override

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_FILES = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_committed_params_file_validates():
    # colab.yaml is an overlay that keeps each study's run_name: test_colab reads it over the notebooks' files
    files = sorted(path for path in (REPO / "params").glob("*.yaml") if path.name != "colab.yaml")
    assert {"default.yaml", "ci.yaml", "imdb.yaml", "imdb_offline.yaml"} <= {f.name for f in files}
    for path in files:
        config = load_config(path)
        assert config.run_name == path.stem, f"{path.name}: run_name should match the file name"


def test_unknown_key_names_the_key_suggests_the_close_one_and_lists_valid_choices(tmp_path):
    params = tmp_path / "typo.yaml"
    params.write_text("learnin_rate: 1e-4\n")
    with pytest.raises(ConfigError) as error:
        load_config(params)
    message = str(error.value)
    assert str(params) in message
    assert "'learnin_rate'" in message
    assert "Did you mean 'learning_rate'" in message
    assert "per_device_train_batch_size" in message  # the valid choices are listed


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"learning_rate": -1e-4}, "'learning_rate' must be > 0"),
        ({"mixing_temperature": 0}, "'mixing_temperature' must be > 0"),
        ({"sources": []}, "'sources' needs at least one data source"),
        ({"mixing_strategy": "mean"}, "'mixing_strategy' must be one of 'target_only', 'concat'"),
        ({"num_train_epochs": "three"}, "'num_train_epochs'"),
        ({"per_device_train_batch_size": 0}, "'per_device_train_batch_size' must be ≥ 1"),
        ({"truncation": "middle"}, "'truncation' must be one of 'head', 'tail' or 'head_tail'"),
        ({"warmup_ratio": 1.5}, "'warmup_ratio' must be in [0, 1)"),
        ({"mixing_strategy": "fixed"}, "mixing_strategy 'fixed' needs mixing_ratios"),
        ({"few_shot_k": 8}, "few_shot_k samples the target domain: set target_domain too"),
        ({"test_split_percentage": 0}, "test_split_percentage=0.0 must each be between 0 and 100"),
        ({"validation_split_percentage": 60, "test_split_percentage": 50}, "leave rows for training (sum < 100)"),
    ],
)
def test_impossible_values_are_one_clear_error_naming_the_key(params, expected):
    with pytest.raises(ConfigError) as error:
        Config.from_params(params, origin="test.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("test.yaml")
    assert "Traceback" not in str(error.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    params = tmp_path / "broken.yaml"
    params.write_text("run_name: broken\nsources: [uci_sentences\nlearning_rate: 1e-4\n")
    with pytest.raises(ConfigError) as error:
        load_config(params)
    assert str(params) in str(error.value)
    assert "line" in str(error.value)
    assert "YAML syntax error" in str(error.value)


def test_missing_params_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_win_over_the_file_and_are_validated(tmp_path):
    params = tmp_path / "study.yaml"
    params.write_text("run_name: study\nlearning_rate: 1.0e-4\n")
    config = load_config(params, {"learning_rate": 3e-5, "num_train_epochs": 1})
    assert config.learning_rate == 3e-5
    assert config.num_train_epochs == 1
    with pytest.raises(ConfigError, match="'seed'"):
        load_config(params, {"seed": "abc"})


def test_overrides_given_as_text_are_read_as_a_yaml_or_json_mapping(tmp_path):
    # papermill's -p passes text: -p overrides '{"seed": 1}' must mean the mapping
    params = tmp_path / "study.yaml"
    params.write_text("run_name: study\n")
    assert load_config(params, '{"seed": 1, "learning_rate": 3e-5}').seed == 1
    assert load_config(params, "num_train_epochs: 2").num_train_epochs == 2
    assert load_config(params, "").run_name == "study"
    with pytest.raises(ConfigError, match="must be a mapping.*got a list"):
        load_config(params, "[1, 2]")
    with pytest.raises(ConfigError, match="not YAML/JSON text"):
        load_config(params, '{"seed": ')


def test_the_params_overlay_replaces_the_files_values_and_overrides_replace_the_overlays(tmp_path, monkeypatch):
    params = tmp_path / "study.yaml"
    params.write_text("run_name: study\nsources: [uci_sentences]\nlearning_rate: 1.0e-4\nseed: 7\n")
    overlay = tmp_path / "hub.yaml"
    overlay.write_text("sources: [customer_reviews, rt_polarity]\ntarget_domain: customer_reviews\nseed: 1\n")
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(overlay))
    config = load_config(params, {"seed": 3})
    assert config.sources == ["customer_reviews", "rt_polarity"] and config.target_domain == "customer_reviews"
    assert (config.run_name, config.learning_rate) == ("study", 1e-4)  # keys the overlay leaves alone stay the file's
    assert config.seed == 3
    assert load_config(params).seed == 1
    assert load_config().sources == ["customer_reviews", "rt_polarity"]  # over the defaults when no file is named
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, "")  # set empty: no overlay
    assert load_config(params).sources == ["uci_sentences"]


def test_relative_paths_in_the_params_overlay_resolve_against_its_own_folder(tmp_path, monkeypatch):
    params = write_own_params(tmp_path / "study", {"sources": [{"path": "mine.csv"}], "output_dir": "out"})
    (tmp_path / "study" / "mine.csv").write_text("text,label\n")
    (tmp_path / "colab" / "data").mkdir(parents=True)
    (tmp_path / "colab" / "data" / "hub.csv").write_text("text,label\n")
    overlay = write_own_params(tmp_path / "colab", {"sources": [{"path": "data/hub.csv"}], "runs_dir": "runs"})
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(overlay))
    monkeypatch.chdir(tmp_path)
    config = load_config(params)
    assert config.source_specs[0].path == str(tmp_path / "colab" / "data" / "hub.csv")
    assert config.runs_dir == str(tmp_path / "colab" / "runs")
    assert config.output_dir == str(tmp_path / "study" / "out")  # the file's own keys still resolve beside it


def test_a_missing_params_overlay_or_an_unknown_key_in_it_names_the_variable_and_the_file(tmp_path, monkeypatch):
    params = write_own_params(tmp_path, {"run_name": "study"})
    missing = tmp_path / "gone.yaml"
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(missing))
    with pytest.raises(ConfigError) as error:
        load_config(params)
    assert str(missing) in str(error.value) and PARAMS_OVERLAY_ENV in str(error.value)
    assert "params file not found" in str(error.value)
    overlay = write_own_params(tmp_path / "colab", {"learnin_rate": 1e-4})
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(overlay))
    with pytest.raises(ConfigError) as error:
        load_config(params)
    message = str(error.value)
    assert message.startswith(f"{overlay} (the params overlay {PARAMS_OVERLAY_ENV} names): unknown parameter "
                              "'learnin_rate'")
    assert "Did you mean 'learning_rate'" in message


def test_command_line_overrides_parse_as_yaml_values():
    assert parse_override("learning_rate=1e-4") == ("learning_rate", 1e-4)
    assert parse_override("sources=[imdb, sst2]") == ("sources", ["imdb", "sst2"])
    assert parse_override("target_domain=null") == ("target_domain", None)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("learning_rate")


def test_sources_accept_names_and_local_file_specs():
    config = Config.from_params({"sources": [
        "uci_sentences:yelp",
        {"path": "reviews.csv", "text_column": "review", "label_column": "stars", "label_map": {"1": 0, "5": 1},
         "domain": "shop"},
    ]})
    specs = config.source_specs
    assert specs[0] == SourceSpec(name="uci_sentences:yelp")
    assert specs[1].path == "reviews.csv" and specs[1].label_map == {"1": 0, "5": 1}
    with pytest.raises(ConfigError, match="exactly one of 'name'"):
        Config.from_params({"sources": [{"text_column": "review"}]})


def test_data_dir_comes_from_the_parameter_then_the_environment_then_shared_data_beside_the_project(
        monkeypatch, tmp_path):
    monkeypatch.setenv("OTHERDATA_DATA_DIR", str(tmp_path / "from_env"))
    assert Config().resolved_data_dir() == tmp_path / "from_env"
    assert Config(data_dir=str(tmp_path / "from_param")).resolved_data_dir() == tmp_path / "from_param"
    monkeypatch.setenv("OTHERDATA_DATA_DIR", "")
    assert Config().resolved_data_dir() is None  # set empty: named sources come from the Hub
    assert Config().resolved().data_dir == ""  # and the run folder's params.yaml says so
    monkeypatch.delenv("OTHERDATA_DATA_DIR")
    assert Config(data_dir="").resolved_data_dir() is None
    # unset: every entry point (runner, notebooks, bench) reads shared/data beside the project, as `make` does
    monkeypatch.chdir(tmp_path)
    shared = REPO.parent / "shared" / "data"
    assert Config().resolved_data_dir() == (shared if shared.is_dir() else None)


def write_own_params(folder: Path, params: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


@pytest.mark.parametrize("cwd", ["repo", "notebooks", "elsewhere"])
def test_relative_paths_in_a_params_file_resolve_against_its_folder_from_any_folder(tmp_path, monkeypatch, cwd):
    mine = tmp_path / "mine"
    for folder in (mine / "data", mine / "model", tmp_path / "copies"):
        folder.mkdir(parents=True)
    (mine / "data" / "reviews.csv").write_text("text,label\n")
    (tmp_path / "copies" / "shared.csv").write_text("text,label\n")
    params = write_own_params(mine, {
        "sources": [{"path": "data/reviews.csv"}, {"path": "shared.csv"}, {"path": "data/gone.csv"}, "imdb"],
        "data_dir": "../copies", "output_dir": "out", "model_name_or_path": "./model"})
    monkeypatch.chdir({"repo": REPO, "notebooks": REPO / "notebooks", "elsewhere": tmp_path}[cwd])
    config = load_config(params)
    assert [s.path for s in config.source_specs[:3]] == [
        str(mine / "data" / "reviews.csv"),  # beside the params file
        str(tmp_path / "copies" / "shared.csv"),  # not there, but in data_dir
        str(mine / "data" / "gone.csv"),  # nowhere: beside the params file, so "file not found" names that folder
    ]
    assert config.sources[3] == "imdb"
    assert config.resolved_data_dir() == tmp_path / "copies"
    assert config.resolved_output_dir() == mine / "out"
    assert config.model_name_or_path == str(mine / "model")


def test_hub_ids_and_keywords_stay_as_given_beside_folders_of_their_name(tmp_path):
    (tmp_path / "default").mkdir()
    (tmp_path / "bert-base-uncased").mkdir()
    for name in ("default", "tiny-random", "bert-base-uncased", "cardiffnlp/twitter-xlm-roberta-base"):
        params = write_own_params(tmp_path, {"model_name_or_path": name, "resume_from_checkpoint": "auto"})
        config = load_config(params)
        assert (config.model_name_or_path, config.resume_from_checkpoint) == (name, "auto")


def test_a_relative_params_file_missing_here_is_read_from_the_project_root(tmp_path, monkeypatch):
    for cwd in (REPO, REPO / "notebooks", tmp_path):
        monkeypatch.chdir(cwd)
        assert load_config("params/ci.yaml").run_name == "ci"
    with pytest.raises(ConfigError, match="params/nope.yaml: params file not found"):
        load_config("params/nope.yaml")


def parameters_cell_values(notebook: Path) -> dict:
    cell = next(c for c in json.loads(notebook.read_text())["cells"]
                if "parameters" in c["metadata"].get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse("".join(cell["source"])).body}


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_a_notebook_default_params_file_loads_from_the_repo_root_and_from_notebooks(notebook, monkeypatch):
    params_file = parameters_cell_values(notebook)["params_file"]
    assert not Path(params_file).is_absolute()
    for cwd in (REPO, REPO / "notebooks"):
        monkeypatch.chdir(cwd)
        assert load_config(params_file) == load_config(REPO / params_file)


def test_run_folders_land_in_runs_of_the_project_root_when_started_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("OTHERDATA_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == REPO  # the checkout this package runs from: its notebooks are found from anywhere
    assert load_config(REPO / "params" / "ci.yaml").resolved_output_dir() == REPO / "runs" / "ci"


def test_resolved_config_makes_local_sources_and_model_folders_absolute(tmp_path, monkeypatch):
    (tmp_path / "copies").mkdir()
    (tmp_path / "copies" / "reviews.csv").write_text("text,label\n")
    (tmp_path / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    config = Config(data_dir=str(tmp_path / "copies"), sources=[{"path": "reviews.csv"}, {"path": "gone.csv"}],
                    model_name_or_path="models/mine")
    resolved = config.resolved()
    # what the notebooks (run in notebooks/) read: the files pre-flight found from the folder the runner started in
    assert [s.path for s in resolved.source_specs] == [str(tmp_path / "copies" / "reviews.csv"), "gone.csv"]
    assert resolved.model_name_or_path == str(tmp_path / "models" / "mine")


def test_relative_paths_resolve_against_the_project_root_from_any_folder(monkeypatch):
    monkeypatch.delenv("OTHERDATA_RUNS_DIR", raising=False)
    monkeypatch.chdir(REPO / "notebooks")
    assert project_root() == REPO
    assert Config(run_name="x").resolved_output_dir() == REPO / "runs" / "x"


def test_resolved_config_round_trips_through_plain_params(tmp_path):
    config = Config(run_name="rt", output_dir=str(tmp_path / "rt"), learning_rate=2e-5).resolved()
    again = Config.from_params(config.to_params())
    assert again == config
    assert Path(again.output_dir).is_absolute()


# --- each study owns its parameters: the study: block, shared replicates, dotted overrides -------------------------

def _study_modules_registered():
    """The study kinds register as `otherdata_utils.studies` is imported, as every entry point does first."""
    from otherdata_utils import studies
    return studies


def test_a_dotted_override_sets_one_study_parameter_and_keeps_the_blocks_others():
    studies = _study_modules_registered()
    config = load_config(REPO / "params" / "study_few_shot.yaml", {"study.few_shot.k_values": [4]})
    params = studies.few_shot.few_shot_params(config)
    assert params.k_values == [4] and params.anchors == ["probe", "setfit"] and params.setfit_max_k == 32
    assert config.replicates.split_seeds == list(range(1, 11))  # the file's replicates stay
    key, value = parse_override("study.few_shot.k_values=[8,null]")  # the runner's --set
    assert load_config(REPO / "params" / "study_few_shot.yaml", {key: value}).study["few_shot"]["k_values"] == [8, None]
    text = load_config(REPO / "params" / "study_few_shot.yaml", '{"replicates.seeds": [3], "study.few_shot.steps": '
                                                                '"equal_target_visits"}')  # papermill's -p overrides
    assert text.replicates.seeds == [3] and text.replicates.split_seeds == list(range(1, 11))
    assert text.study["few_shot"]["steps"] == "equal_target_visits" and text.study["few_shot"]["k_values"][0] == 8


def test_a_study_block_is_recorded_with_every_parameter_and_round_trips():
    _study_modules_registered()
    config = load_config(None, {"study.few_shot.k_values": [4]})
    assert config.study["few_shot"]["steps"] == "equal_steps" and config.study["few_shot"]["anchors"] == []
    assert Config.from_params(config.to_params()).study == config.study
    changed = config.replace(study={"few_shot": {"anchors": ["probe"]}})  # one parameter; the others stay
    assert changed.study["few_shot"]["k_values"] == [4] and changed.study["few_shot"]["anchors"] == ["probe"]


@pytest.mark.parametrize("old, new", [("study_k_values", "study.few_shot.k_values"), ("seeds", "replicates.seeds"),
                                      ("study_noise_levels", "study.quality.noise_levels"),
                                      ("study_domains", "study.transfer.domains")])
def test_an_old_flat_key_names_its_new_place_and_the_file(tmp_path, old, new):
    path = tmp_path / "old.yaml"
    path.write_text(f"{old}: [1]\n")
    with pytest.raises(ConfigError, match=f"{path}: parameter '{old}' moved to '{new}"):
        load_config(path)


def test_an_unknown_parameter_inside_a_study_block_names_the_file_and_the_closest_key(tmp_path):
    _study_modules_registered()
    path = tmp_path / "typo.yaml"
    path.write_text("study:\n  few_shot:\n    k_value: [4]\n")
    with pytest.raises(ConfigError, match=f"{path}: unknown parameter 'study.few_shot.k_value'. Did you mean "
                                          "'k_values'"):
        load_config(path)
    path.write_text("study:\n  few_shots: {}\n")
    with pytest.raises(ConfigError, match=f"{path}: unknown study kind 'study.few_shots'. Did you mean 'few_shot'"):
        load_config(path)
    path.write_text("replicates:\n  seed: [1]\n")
    with pytest.raises(ConfigError, match=f"{path}: unknown parameter 'replicates.seed'. Did you mean 'seeds'"):
        load_config(path)
    with pytest.raises(ConfigError, match="overrides: unknown parameter 'study.quality.noise_level'"):
        load_config(REPO / "params" / "study_quality.yaml", {"study.quality.noise_level": [0.1]})


@pytest.mark.parametrize("kind", ["time", "quality", "language", "peft", "pretraining"])
def test_a_study_whose_rows_follow_seeds_refuses_split_seeds_at_load(tmp_path, kind):
    _study_modules_registered()
    path = tmp_path / "split.yaml"
    path.write_text(f"replicates: {{seeds: [1], split_seeds: [1, 2]}}\nstudy:\n  {kind}: {{}}\n")
    with pytest.raises(ConfigError, match=f"{path}: parameter 'replicates.split_seeds' is set, but the {kind} study"):
        load_config(path)


@pytest.mark.parametrize("kind", ["few_shot", "transfer", "routing"])
def test_a_study_that_draws_rows_by_split_seed_crosses_them_with_seeds(tmp_path, kind):
    studies = _study_modules_registered()
    config = load_config(None, {"replicates": {"seeds": [7, 8], "split_seeds": [1, 2]}, f"study.{kind}": {}})
    assert studies.replicates(config) == [(1, 7), (1, 8), (2, 7), (2, 8)]
    assert studies.replicates(config.replace(replicates={"split_seeds": None})) == [(7, 7), (8, 8)]
