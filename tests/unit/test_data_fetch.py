"""Getting the other data: `data fetch` turns a source's Hub rows into the folder its local reader expects, `data
list` names each source's origin and licence, and a failed Hub load says whether offline mode or the network is to
blame. No network: the Hub is stood in for by small Hub-shaped DatasetDicts."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import pytest

from otherdata_utils.data import NAMED_SOURCES, DataError, load_source
from otherdata_utils.data.fetch import LAYOUTS, data_command, fetch, layout_files, write_source
from otherdata_utils.data.copies import FPB_HUB_CONFIG, FPB_SUBSETS, XLMT_LANGUAGES
from otherdata_utils.data.named import EMBEDDED_DIR
from shared_data import data_required

# The phrasebank's lower-agreement files are ISO-8859-1: its texts stay inside Latin-1.
LATIN_1_TEXTS = ["Operating profit rose to EUR 13.1 mn", "Net sales fell by 5 % ; the outlook is 'weak'", "Café sales"]
TEXTS = ['a "quoted" film, <br /><br />with breaks', "naïve café — très bien", "it's 100% fine; really?",
         "tab-free but long " * 12, "ends with a backslash \\", "ünïcödé and emoji 🙂"]


def rows(count: int, offset: int = 0, classes: int = 2, text_column: str = "text", texts=TEXTS) -> datasets.Dataset:
    """`count` labelled rows, each text distinct, labels cycling over the classes."""
    return datasets.Dataset.from_dict({
        text_column: [f"{texts[(offset + i) % len(texts)]} #{offset + i}" for i in range(count)],
        "label": [(offset + i) % classes for i in range(count)]})


def hub_copy(name: str) -> dict:
    """A small Hub-shaped copy of a named source: config -> DatasetDict, with the columns and splits its Hub
    repository has (imdb's unlabelled split, sst2's hidden test labels, one config per phrasebank level or tweet
    language)."""
    if name == "imdb":
        unlabelled = datasets.Dataset.from_dict({"text": ["no label"] * 4, "label": [-1] * 4})
        return {None: datasets.DatasetDict(train=rows(30), test=rows(20, 100), unsupervised=unlabelled)}
    if name == "sst2":
        hidden = datasets.Dataset.from_dict({"idx": [0, 1], "sentence": ["hidden one", "hidden two"], "label": [-1, -1]})
        return {None: datasets.DatasetDict(train=rows(40, text_column="sentence").add_column("idx", list(range(40))),
                                           validation=rows(12, 200, text_column="sentence"), test=hidden)}
    if name == "rt_polarity":
        return {None: datasets.DatasetDict(train=rows(30), validation=rows(10, 300), test=rows(10, 400))}
    if name == "customer_reviews":
        return {None: datasets.DatasetDict(train=rows(30), test=rows(12, 500))}
    if name == "financial_phrasebank":
        # each lower level holds every sentence of the higher ones, as the four files of the release do
        sizes = {"allagree": 12, "75agree": 18, "66agree": 24, "50agree": 30}
        return {FPB_HUB_CONFIG.format(subset): datasets.DatasetDict(train=rows(
            sizes[subset], classes=3, text_column="sentence", texts=LATIN_1_TEXTS))
                for subset in FPB_SUBSETS}
    if name == "xlmt_tweets":
        return {language: datasets.DatasetDict(
            train=rows(18, 10 * i, 3), validation=datasets.Dataset.from_dict(
                {"text": ["line one\nline two", "i\\u2019m here", "x"], "label": [0, 1, 2]}),
            test=rows(9, 700 + 10 * i, 3)) for i, language in enumerate(XLMT_LANGUAGES)}
    raise KeyError(name)


class FakeHub:
    """Stands in for datasets.load_dataset: answers (repository, config) with the DatasetDict given."""

    def __init__(self, hub_id: str, copy: dict) -> None:
        self.hub_id, self.copy = hub_id, copy

    def __call__(self, path, name=None, **options):
        assert path == self.hub_id
        return self.copy[name]


def row_set(dsd: datasets.DatasetDict) -> Counter:
    """Every row as (text, label, domain, agreement), over all splits: ids and splits differ between Hub and local
    copies (Hub rows are numbered by index; a source without splits is carved)."""
    return Counter((row["text"], row["label"], row["domain"], row["agreement"])
                   for split in dsd.values() for row in split.to_list())


def test_every_source_with_a_hub_copy_has_a_layout_to_fetch_into():
    assert set(LAYOUTS) == {named.name for named in NAMED_SOURCES.values() if named.hub_id}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_fetched_layout_reads_back_the_rows_the_hub_copy_gives(name, tmp_path, monkeypatch):
    copy = hub_copy(name)
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(NAMED_SOURCES[name].hub_id, copy))
    from_hub = load_source(name, None)
    assert write_source(tmp_path / name, layout_files(name, copy)) == "written"
    local = load_source(name, tmp_path)
    assert row_set(local) == row_set(from_hub)
    assert sum(row_set(local).values()) >= 30  # the rows really were read, not two empty sets compared


def test_fetched_imdb_keeps_texts_and_labels_split_by_split(tmp_path):
    copy = hub_copy("imdb")
    write_source(tmp_path / "imdb", layout_files("imdb", copy))
    local = load_source("imdb", tmp_path, validation_percentage=0.0)
    assert sorted(zip(local["test"]["text"], local["test"]["label"])) == sorted(
        zip(copy[None]["test"]["text"], copy[None]["test"]["label"]))
    assert len(local["train"]) == 30 and "no label" not in local["train"]["text"]  # unsupervised rows left out


def test_fetched_tweets_keep_a_line_break_inside_one_tweet(tmp_path):
    write_source(tmp_path / "xlmt_tweets", layout_files("xlmt_tweets", hub_copy("xlmt_tweets")))
    texts = set(load_source("xlmt_tweets:english", tmp_path)["validation"]["text"])
    assert {"line one\nline two", "i’m here"} <= texts


def test_fetch_writes_the_packaged_uci_sentences_and_keeps_a_different_copy_unless_forced(tmp_path):
    assert fetch("uci_sentences", tmp_path) == "written"
    assert len(load_source("uci_sentences", tmp_path)["train"]) == 2100
    assert fetch("uci_sentences", tmp_path) == "unchanged"
    (tmp_path / "uci_sentences" / "yelp_labelled.txt").write_text("Great place.\t1\n")
    with pytest.raises(DataError, match=r"uci_sentences: a different copy is already there.*--force"):
        fetch("uci_sentences", tmp_path)
    assert fetch("uci_sentences", tmp_path, force=True) == "written"
    assert len((tmp_path / "uci_sentences" / "yelp_labelled.txt").read_text().splitlines()) == 1000
    assert sorted(path.name for path in tmp_path.iterdir()) == ["uci_sentences"]  # no temporary folder left


def test_fetch_of_a_source_without_a_hub_copy_points_to_its_original(tmp_path):
    with pytest.raises(DataError, match=r"blitzer_mds has no Hugging Face Hub copy.*www\.cs\.jhu\.edu"):
        fetch("blitzer_mds", tmp_path)
    assert not (tmp_path / "blitzer_mds").exists()


def test_packaged_uci_sentences_load_without_a_data_dir():
    dsd = load_source("uci_sentences", None)
    assert {split: len(dsd[split]) for split in dsd} == {"train": 2100, "validation": 300, "test": 600}
    assert Counter(dsd["test"]["domain"]) == {"amazon": 200, "imdb": 200, "yelp": 200}


def failing_hub(error: Exception):
    def load_dataset(*args, **kwargs):
        raise error
    return load_dataset


def test_hub_failure_under_offline_mode_says_offline_mode_is_set(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", failing_hub(ConnectionError("Couldn't reach the Hub")))
    with pytest.raises(DataError, match=r"offline mode is set \(HF_HUB_OFFLINE=1\) — unset it or fetch the data "
                                        r"with `data fetch`"):
        load_source("rt_polarity", None)


def test_hub_failure_without_offline_mode_says_the_network_failed(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", failing_hub(ConnectionError("Couldn't reach the Hub")))
    with pytest.raises(DataError, match=r"rotten_tomatoes\): the network failed \(ConnectionError") as raised:
        load_source("rt_polarity", None)
    assert "offline" not in str(raised.value)
    monkeypatch.setattr(datasets, "load_dataset", failing_hub(ValueError("BuilderConfig 'x' not found")))
    with pytest.raises(DataError, match=r"ValueError: BuilderConfig 'x' not found") as raised:
        load_source("rt_polarity", None)
    assert "network" not in str(raised.value)


def test_data_list_names_each_source_its_origin_licence_hub_copy_and_the_copy_read(tmp_path, capsys):
    (tmp_path / "imdb").mkdir()
    assert data_command(["list", "--data-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(lines) == set(NAMED_SOURCES)
    assert lines["imdb"].split()[1:3] == ["data", "dir"] and "stanfordnlp/imdb" in lines["imdb"]
    assert lines["uci_sentences"].split()[1] == "packaged" and "CC BY 4.0" in lines["uci_sentences"]
    assert lines["blitzer_mds"].split()[1:3] == ["missing", "none"]
    assert "non-commercial" in lines["financial_phrasebank"]


def test_the_packaged_uci_files_are_package_data_with_their_licence_and_citation():
    import glob
    import tomllib

    package = EMBEDDED_DIR.parents[1]
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["otherdata_utils"]
    shipped = {Path(path).relative_to(package) for pattern in patterns for path in glob.glob(str(package / pattern))}
    files = {path.relative_to(package) for path in EMBEDDED_DIR.rglob("*") if path.is_file()}
    assert {path.name for path in files} == {"amazon_cells_labelled.txt", "imdb_labelled.txt", "yelp_labelled.txt",
                                             "readme.txt", "NOTICE"}
    assert files <= shipped
    notice = (EMBEDDED_DIR / "uci_sentences" / "NOTICE").read_text(encoding="utf-8")
    assert "CC BY 4.0" in notice and "Kotzias, Dimitrios and Denil, Misha and de Freitas, Nando" in notice
    assert "archive.ics.uci.edu/dataset/331" in notice


def test_missing_shared_data_fails_the_tests_where_ci_or_the_environment_requires_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("OTHERDATA_REQUIRE_DATA", raising=False)
    assert not data_required()  # a fresh clone: tests that need the shared data are skipped
    monkeypatch.setenv("CI", "true")
    assert data_required()
    monkeypatch.setenv("OTHERDATA_REQUIRE_DATA", "0")
    assert not data_required()  # CI without the data, said so explicitly
    monkeypatch.delenv("CI")
    monkeypatch.setenv("OTHERDATA_REQUIRE_DATA", "1")  # what .ci/run exports
    assert data_required()
