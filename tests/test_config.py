"""The one config object: defaults, params files, overrides, and one clear error per bad value."""
from pathlib import Path

import pytest

from otherdata_utils.config import (
    Config,
    ConfigError,
    SourceSpec,
    load_config,
    parse_override,
    project_root,
)

REPO = Path(__file__).resolve().parents[1]


def test_every_committed_params_file_validates():
    files = sorted((REPO / "params").glob("*.yaml"))
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


def test_data_dir_comes_from_the_parameter_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OTHERDATA_DATA_DIR", str(tmp_path / "from_env"))
    assert Config().resolved_data_dir() == tmp_path / "from_env"
    assert Config(data_dir=str(tmp_path / "from_param")).resolved_data_dir() == tmp_path / "from_param"
    monkeypatch.delenv("OTHERDATA_DATA_DIR")
    assert Config().resolved_data_dir() is None  # named sources then come from the Hub


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
