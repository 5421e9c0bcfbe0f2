"""Data loading without a data folder: local files (CSV, TSV, JSONL, parquet, an aclImdb folder) read into the schema,
the file reader's row numbers, bad input named by file, row and parameter, the packaged UCI sentences, and the
Hugging Face Hub copies through a stand-in loader."""
import gzip
import json
from collections import Counter
from pathlib import Path

import datasets
import pyarrow
import pyarrow.parquet
import pytest

from dataset_views import SPLITS, class_counts, rows, sizes
from otherdata_utils.config import Config, SourceSpec
from otherdata_utils.data import (DataError, FileReadError, label_names, load_data, load_source, read_records,
                                  record_features)
from otherdata_utils.files import file_format


def test_split_percentages_set_the_carved_shares():
    uci = load_source("uci_sentences:yelp", None, validation_percentage=20.0, test_percentage=30.0)
    assert sizes(uci) == {"train": 500, "validation": 200, "test": 300}


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


REVIEWS = [(f"review number {i} was {'great' if i % 2 else 'awful'}", "positive" if i % 2 else "negative")
           for i in range(40)]


def test_csv_with_renamed_columns_maps_sorted_string_labels(tmp_path):
    lines = ["body,sentiment"] + [f'"{text}, really",{label}' for text, label in REVIEWS]
    path = write(tmp_path / "shop.csv", "\n".join(lines) + "\n")
    dsd = load_source(SourceSpec(path=str(path), text_column="body", label_column="sentiment", domain="shop"), None)
    assert label_names(dsd) == ["negative", "positive"]
    assert sizes(dsd) == {"train": 28, "validation": 4, "test": 8}
    first = next(row for row in rows(dsd) if row["id"] == "shop.csv:2")
    assert (first["text"], first["label"], first["domain"], first["source"]) == (
        "review number 0 was awful, really", 0, "shop", "shop.csv")


def test_tsv_keeps_quote_characters_inside_texts(tmp_path):
    lines = ["label\tsentence"] + [f'{label}\tthe " conan " {text}' for text, label in REVIEWS]
    path = write(tmp_path / "quotes.tsv", "\n".join(lines) + "\n")
    dsd = load_source(SourceSpec(path=str(path), text_column="sentence"), None)
    assert all(row["text"].startswith('the " conan " review') for row in rows(dsd))
    assert sum(sizes(dsd).values()) == 40


def test_jsonl_gz_with_label_map_names_classes_from_its_keys(tmp_path):
    records = [{"uid": i, "content": text, "stars": 5 if label == "positive" else 1} for i, (text, label)
               in enumerate(REVIEWS)]
    path = tmp_path / "stars.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(record) for record in records).encode("utf-8")))
    dsd = load_source(SourceSpec(path=str(path), text_column="content", label_column="stars",
                                 label_map={"1": 0, "5": 1}), None)
    assert label_names(dsd) == ["1", "5"]
    assert Counter(row["label"] for row in rows(dsd)) == {0: 20, 1: 20}
    named = load_source(SourceSpec(path=str(path), text_column="content", label_column="stars",
                                   label_map={"1": 0, "5": 1}, label_names=["bad", "good"]), None)
    assert label_names(named) == ["bad", "good"]


def test_parquet_with_integer_labels_names_classes_by_id_and_keeps_its_ids_and_splits(tmp_path):
    table = pyarrow.table({
        "id": [f"r{i}" for i in range(40)],
        "text": [text for text, _ in REVIEWS],
        "label": [int(label == "positive") for _, label in REVIEWS],
        "split": ["test" if i < 8 else "train" for i in range(40)],
    })
    path = tmp_path / "reviews.parquet"
    pyarrow.parquet.write_table(table, path)
    dsd = load_source(SourceSpec(path=str(path)), None)
    assert label_names(dsd) == ["0", "1"]
    assert sizes(dsd) == {"train": 28, "validation": 4, "test": 8}  # validation carved from train only
    assert dsd["test"][0]["id"] == "reviews.parquet:r0"


def test_aclimdb_folder_reads_labels_ratings_and_splits(tmp_path):
    for split in ("train", "test"):
        for label, rating in (("neg", 2), ("pos", 9)):
            for i in range(10):
                write(tmp_path / "aclImdb" / split / label / f"{i}_{rating}.txt", f"{label} film {i}<br />fine")
    write(tmp_path / "aclImdb" / "imdb.vocab", "film\n")
    dsd = load_source(SourceSpec(path="aclImdb"), tmp_path)
    assert sizes(dsd) == {"train": 18, "validation": 2, "test": 20}
    assert class_counts(dsd["test"]) == {"neg": 10, "pos": 10}
    row = next(row for row in rows(dsd) if row["id"] == "aclImdb:test:pos:3")
    assert (row["text"], row["rating"], row["label"]) == ("pos film 3<br />fine", 9.0, 1)


def test_relative_path_resolves_against_data_dir_then_the_current_folder(tmp_path, monkeypatch):
    lines = ["text,label"] + [f"{text},{label}" for text, label in REVIEWS]
    write(tmp_path / "data" / "mine.csv", "\n".join(lines))
    assert sum(sizes(load_source(SourceSpec(path="mine.csv"), tmp_path / "data")).values()) == 40
    monkeypatch.chdir(tmp_path / "data")
    assert sum(sizes(load_source(SourceSpec(path="mine.csv"), tmp_path / "elsewhere")).values()) == 40


def test_a_file_declared_as_one_split_is_not_carved(tmp_path):
    lines = ["text,label"] + [f"{text},{label}" for text, label in REVIEWS]
    path = write(tmp_path / "held_out.csv", "\n".join(lines))
    dsd = load_source(SourceSpec(path=str(path), split="test"), None)
    assert sizes(dsd) == {"train": 0, "validation": 0, "test": 40}


def test_reader_numbers_a_quoted_row_over_several_lines_by_its_first_line(tmp_path):
    path = write(tmp_path / "multi.csv", 'text,label\n"first line\nsecond line",1\nshort,0\nbroken,0,extra\n')
    with pytest.raises(FileReadError) as raised:
        read_records(path, "csv")
    assert (raised.value.line, raised.value.reason) == (5, "fields")
    assert str(raised.value).startswith(f"{path}, line 5: 3 fields where the header has 2")
    records = read_records(write(tmp_path / "ok.csv", 'text,label\n"first line\nsecond line",1\nshort,0\n'), "csv")
    assert records.positions == [2, 4]
    assert records.columns["text"] == ["first line\nsecond line", "short"]


def test_reader_reads_gzipped_parquet_and_numbers_its_rows(tmp_path):
    plain = tmp_path / "reviews.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"text": [text for text, _ in REVIEWS],
                                               "label": [label for _, label in REVIEWS]}), plain)
    packed = tmp_path / "reviews.parquet.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    records = read_records(packed, file_format(packed))
    assert records.columns == read_records(plain, "parquet").columns
    assert records.where(39) == (str(packed), "row", 40)
    assert sizes(load_source(SourceSpec(path=str(packed)), None)) == {"train": 28, "validation": 4, "test": 8}


@pytest.mark.parametrize("name, expected", [
    ("reviews.csv", "csv"), ("reviews.TSV.gz", "tsv"), ("reviews.tab", "tsv"), ("reviews.jsonl.gz", "jsonl"),
    ("reviews.ndjson", "jsonl"), ("reviews.pq", "parquet"), ("reviews.xlsx", None), ("reviews", None),
])
def test_format_follows_the_file_name_past_gz(name, expected):
    assert file_format(name) == expected


GOOD_ROWS = "\n".join(f"{text},{label}" for text, label in REVIEWS)


def bad_case(name, content, expected, **spec):
    """(file name, content, substrings the one DataError must hold, SourceSpec options)."""
    return pytest.param(name, content, expected, spec, id=spec.pop("case"))


BAD_INPUTS = [
    bad_case("gone.csv", None, ["gone.csv", "file not found", "path"], case="missing file"),
    bad_case("reviews.xlsx", "text,label\n", ["reviews.xlsx", "unknown format", "set format"], case="unknown format"),
    bad_case("empty.csv", "", ["empty.csv", "empty file"], case="empty file"),
    bad_case("header.csv", "text,label\n", ["header.csv", "empty file"], case="header only"),
    bad_case("cols.csv", "review,label\nnice,positive\n",
             ["cols.csv", "no column 'text'", "['review', 'label']", "text_column"], case="missing text column"),
    bad_case("cols.csv", "text,stars\nnice,positive\n",
             ["cols.csv", "no column 'label'", "['text', 'stars']", "label_column"], case="missing label column"),
    bad_case("labels.csv", "text,label\n" + GOOD_ROWS + "\nodd one,meh\n",
             ["labels.csv, line 42", "'meh'", "'negative', 'positive'", "label_map"],
             label_map={"negative": 0, "positive": 1}, case="unknown label value"),
    bad_case("labels.csv", "text,label\n" + GOOD_ROWS + "\nno label,\n", ["labels.csv, line 42", "empty label"],
             case="empty label"),
    bad_case("labels.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": NaN}\n',
             ["labels.jsonl, line 2", "empty label"], case="NaN label"),
    bad_case("latin.csv", ("text,label\n" + GOOD_ROWS + "\ncaf\u00e9 au lait,positive\n").encode("iso-8859-1"),
             ["latin.csv", "byte 1444", "line 42", "not valid utf-8", "set encoding"], case="not UTF-8"),
    bad_case("long.csv", "text,label\n" + GOOD_ROWS + '\n"' + "x" * 600 + '",positive\n',
             ["long.csv, line 42", "600 characters", "max_text_chars=500"], case="text too long"),
    bad_case("blank.csv", "text,label\n" + "\n".join(f",{label}" for _, label in REVIEWS),
             ["blank.csv", "every text is empty", "text_column"], case="all texts empty"),
    bad_case("one.csv", "text,label\n" + "\n".join(f"{text},positive" for text, _ in REVIEWS),
             ["one.csv", "only class 'positive'", "label_column"], case="one class in train"),
    bad_case("ragged.csv", "text,label\n" + GOOD_ROWS + "\nfine, really, positive\n",
             ["ragged.csv, line 42", "3 fields", "header has 2", "format"], case="ragged CSV row"),
    bad_case("broken.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n',
             ["broken.jsonl, line 2", "not valid JSON"], case="invalid JSON line"),
    bad_case("unlabelled.csv", "text,label\n" + "\n".join(f"{text},{i % 2}" for i, (text, _) in enumerate(REVIEWS))
             + "\nhidden,-1\n", ["unlabelled.csv, line 42", "negative", "label_map"], case="negative class id"),
    bad_case("split.csv", "text,label,split\nnice,1,train\nbad,0,holdout\n",
             ["split.csv, line 3", "'holdout'", "set split"], case="unknown split value"),
    bad_case("ids.csv", "id,text,label\n7,nice,1\n7,bad,0\n", ["ids.csv, line 3", "repeats", "id column"],
             case="duplicate ids"),
    bad_case("twice.csv", "text,label,text\n" + "\n".join(f"{text},{label},again" for text, label in REVIEWS),
             ["twice.csv, line 1", "repeats column(s) 'text'"], case="repeated header column"),
]


@pytest.mark.parametrize("name, content, expected, spec", BAD_INPUTS)
def test_bad_local_input_raises_one_data_error_naming_file_row_and_parameter(tmp_path, name, content, expected,
                                                                             spec):
    if content is not None:
        write(tmp_path / name, content)
    with pytest.raises(DataError) as raised:
        load_source(SourceSpec(path=str(tmp_path / name), **spec), None, max_text_chars=500)
    message = str(raised.value)
    assert all(part in message for part in expected), message
    error = raised.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # none chained


def test_unknown_named_source_lists_names_and_suggests_a_close_match(tmp_path):
    with pytest.raises(DataError, match=r"unknown data source 'imbd'\. Did you mean 'imdb'.*uci_sentences"):
        load_source("imbd", tmp_path)


def test_unknown_subset_lists_the_valid_ones(tmp_path):
    with pytest.raises(DataError, match=r"unknown subset 'bookz'\. Did you mean 'books'.*kitchen_&_housewares"):
        load_source("blitzer_mds:bookz", tmp_path)
    with pytest.raises(DataError, match="'imdb' has no subsets"):
        load_source("imdb:movies", tmp_path)


def test_data_dir_without_the_source_folder_says_how_it_must_be_laid_out_and_how_to_fetch_it(tmp_path):
    with pytest.raises(DataError, match=r"rt_polarity: folder not found.*laid out like shared/data.*data fetch "
                                        r"rt_polarity"):
        load_source("rt_polarity", tmp_path)
    with pytest.raises(DataError, match=r"blitzer_mds: folder not found.*no Hub copy: get it from https://"):
        load_source("blitzer_mds", tmp_path)


def test_uci_sentences_fall_back_to_the_packaged_copy_where_the_data_dir_lacks_them(tmp_path):
    assert len(load_source("uci_sentences:yelp", tmp_path)["test"]) == 200


def test_load_data_rejects_a_source_listed_twice():
    config = Config(sources=["uci_sentences", "uci_sentences:yelp"], data_dir="")
    with pytest.raises(DataError, match=r"id 'uci_sentences:yelp:\d+' occurs in both 'uci_sentences' and "
                                        r"'uci_sentences:yelp'"):
        load_data(config)


def test_load_data_carves_validation_from_train_when_files_hold_train_and_test_only(tmp_path):
    lines = ["text,label"] + [f"{text},{label}" for text, label in REVIEWS]
    write(tmp_path / "train.csv", "\n".join(lines))
    write(tmp_path / "test.csv", "\n".join(lines[:11]))
    config = Config(sources=[SourceSpec(path="train.csv", split="train"), SourceSpec(path="test.csv", split="test")],
                    data_dir=str(tmp_path))
    dsd = load_data(config)
    assert sizes(dsd) == {"train": 36, "validation": 4, "test": 10}
    assert set(dsd["validation"]["split"][:]) == {"validation"}
    assert {id_.split(":")[0] for id_ in dsd["validation"]["id"][:]} == {"train.csv"}


class FakeHub:
    """Stands in for datasets.load_dataset: records each call, answers with small DatasetDicts."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, path, name=None, **options):
        self.calls.append((path, name, options))
        return self.answers[(path, name)]


def hub_split(texts, labels, text_column="text"):
    return datasets.Dataset.from_dict({text_column: texts, "label": labels})


def test_hub_imdb_is_loaded_with_load_dataset_and_mapped_to_the_schema(monkeypatch):
    texts = [f"film {i} was {'good' if i % 2 else 'bad'}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    hub = FakeHub({("stanfordnlp/imdb", None): datasets.DatasetDict({
        "train": hub_split(texts, labels), "test": hub_split(texts[:10], labels[:10]),
        "unsupervised": hub_split(["no label"] * 5, [-1] * 5)})})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dsd = load_source("imdb", None)
    assert hub.calls == [("stanfordnlp/imdb", None, {"revision": None})]
    assert all(dsd[split].features == record_features(["neg", "pos"]) for split in SPLITS)
    assert sizes(dsd) == {"train": 36, "validation": 4, "test": 10}  # unsupervised dropped, validation carved
    assert dsd["test"][3] | {"text": None} == {
        "id": "imdb:test:3", "text": None, "label": 1, "domain": "imdb", "source": "imdb", "split": "test",
        "agreement": None, "date": None, "helpful_votes": None, "total_votes": None, "rating": None}


def test_hub_sst2_drops_hidden_test_labels_and_carves_test_from_train(monkeypatch):
    texts = [f"phrase {i}" for i in range(40)]
    hub = FakeHub({("stanfordnlp/sst2", None): datasets.DatasetDict({
        "train": hub_split(texts, [i % 2 for i in range(40)], "sentence"),
        "validation": hub_split(texts[:6], [0, 1] * 3, "sentence"),
        "test": hub_split(texts[:6], [-1] * 6, "sentence")})})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    assert sizes(load_source("sst2", None)) == {"train": 32, "validation": 6, "test": 8}


def test_hub_financial_phrasebank_reads_every_agreement_config_from_the_parquet_export(monkeypatch):
    sentences = [f"Sales rose {i} %" for i in range(30)]
    labels = [i % 3 for i in range(30)]
    by_level = {"allagree": 12, "75agree": 18, "66agree": 24, "50agree": 30}
    hub = FakeHub({("takala/financial_phrasebank", f"sentences_{subset}"): datasets.DatasetDict(
        {"train": hub_split(sentences[:count], labels[:count], "sentence")}) for subset, count in by_level.items()})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dsd = load_source("financial_phrasebank:75agree", None)
    assert sorted(name for _, name, _ in hub.calls) == sorted(f"sentences_{subset}" for subset in by_level)
    assert {options["revision"] for _, _, options in hub.calls} == {"refs/convert/parquet"}
    assert Counter(round(row["agreement"], 2) for row in rows(dsd)) == {1.0: 12, 0.75: 6}
    assert label_names(dsd) == ["negative", "neutral", "positive"]


def test_hub_xlmt_tweets_loads_one_config_per_language_and_decodes_escapes(monkeypatch):
    texts = [f"i\\u2019m tweet {i}" for i in range(30)]
    splits = {split: hub_split(texts, [i % 3 for i in range(30)]) for split in SPLITS}
    hub = FakeHub({("cardiffnlp/tweet_sentiment_multilingual", "english"): datasets.DatasetDict(splits)})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    dsd = load_source("xlmt_tweets:english", None)
    assert [name for _, name, _ in hub.calls] == ["english"]
    assert dsd["train"][0]["text"] == "i’m tweet 0" and set(dsd["train"]["domain"][:]) == {"english"}


def test_source_without_a_hub_copy_asks_for_the_data_dir():
    with pytest.raises(DataError, match=r"blitzer_mds has no Hugging Face Hub copy: download it from https://.*"
                                        "OTHERDATA_DATA_DIR"):
        load_source("blitzer_mds", None)


def test_hub_failure_becomes_a_data_error_naming_the_repository(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"rt_polarity.*cornell-movie-review-data/rotten_tomatoes.*OTHERDATA_DATA_DIR"):
        load_source("rt_polarity", None)
