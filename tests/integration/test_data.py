"""The data step on the real shared data (counts from its README, checked by parsing), local files and the Hub."""
import gzip
import json
import time
from collections import Counter
from pathlib import Path

import datasets
import pyarrow
import pyarrow.parquet
import pytest

from otherdata_utils import pipeline
from otherdata_utils.config import Config, SourceSpec
from otherdata_utils.data import (
    NAMED_SOURCES,
    DataError,
    FileReadError,
    fingerprint,
    label_names,
    load_data,
    load_source,
    read_records,
    record_features,
    sources_table,
)
from otherdata_utils.files import file_format

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="session")
def load(request):
    """load_source on the shared data, each source read once per session; the UCI sentences from the packaged copy,
    so their tests need no data folder (the others skip without one)."""
    cache = {}

    def _load(name: str, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            started = time.perf_counter()
            packaged = name.partition(":")[0] == "uci_sentences"
            cache[key] = load_source(name, None if packaged else request.getfixturevalue("data_dir"), **options)
            cache[key, "seconds"] = time.perf_counter() - started
        return cache[key]

    _load.seconds = lambda name: cache[(name, ()), "seconds"]
    return _load


def sizes(dsd):
    return {split: len(dsd[split]) for split in SPLITS}


def class_counts(dataset):
    names = label_names(dataset)
    return dict(Counter(names[label] for label in dataset["label"][:]))


def rows(dsd):
    return [row for split in SPLITS for row in dsd[split].to_list()]


# ------------------------------------------------------------------------------------------ named sources


def test_imdb_keeps_its_test_split_and_carves_a_tenth_of_train_for_validation(load):
    imdb = load("imdb")
    assert sizes(imdb) == {"train": 22_500, "validation": 2_500, "test": 25_000}
    assert class_counts(imdb["train"]) == {"neg": 11_250, "pos": 11_250}
    assert class_counts(imdb["validation"]) == {"neg": 1_250, "pos": 1_250}
    assert class_counts(imdb["test"]) == {"neg": 12_500, "pos": 12_500}
    assert imdb["train"][0]["id"].startswith("imdb:train:")
    assert set(imdb["test"]["rating"][:]) == {1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0, 10.0}
    assert load.seconds("imdb") < 20


def test_uci_sentences_keeps_rows_with_u0085(load):
    uci = load("uci_sentences")
    per_domain = Counter(domain for split in SPLITS for domain in uci[split]["domain"][:])
    assert per_domain == {"amazon": 1_000, "imdb": 1_000, "yelp": 1_000}
    texts = {row["id"]: row["text"] for row in rows(uci)}
    # Line 179 of imdb_labelled.txt holds U+0085; str.splitlines() would have cut it in two.
    assert texts["uci_sentences:imdb:179"] == "The script is\x85was there a script?  "
    assert sum("\x85" in text for text in texts.values()) == 2


def test_uci_sentences_carves_70_10_20_within_each_domain_and_label(load):
    uci = load("uci_sentences")
    for split, expected in (("train", 350), ("validation", 50), ("test", 100)):
        strata = Counter(zip(uci[split]["domain"][:], uci[split]["label"][:]))
        assert set(strata.values()) == {expected}, split
        assert len(strata) == 6


def test_blitzer_mds_has_1000_reviews_per_label_per_domain_with_dates_votes_and_ratings(load):
    blitzer = load("blitzer_mds")
    all_rows = rows(blitzer)
    strata = Counter((row["domain"], row["label"]) for row in all_rows)
    assert len(strata) == 8 and set(strata.values()) == {1_000}
    assert sizes(blitzer) == {"train": 5_600, "validation": 800, "test": 1_600}
    assert sum(row["date"] is None for row in all_rows) == 1
    assert sum(row["date"] is not None and row["date"] <= "2005-12-31" for row in all_rows) == 2_634
    assert sum(row["total_votes"] is None for row in all_rows) == 1_299  # an empty "helpful" field
    first = next(row for row in all_rows
                 if row["id"] == "blitzer_mds:books:0785758968:one_of_the_best_crichton_novels:joseph_m")
    assert (first["date"], first["helpful_votes"], first["total_votes"], first["rating"]) == ("2006-07-01", 0, 1, 5.0)
    assert Counter(row["rating"] for row in all_rows) == {5.0: 2_879, 1.0: 2_421, 2.0: 1_579, 4.0: 1_121}


def test_blitzer_subsets_select_domains_and_accept_the_kitchen_alias(load):
    kitchen = load("blitzer_mds:kitchen")
    assert {domain for split in SPLITS for domain in kitchen[split]["domain"][:]} == {"kitchen_&_housewares"}
    assert sum(sizes(kitchen).values()) == 2_000
    two = load("blitzer_mds:books,dvd")
    assert Counter(domain for split in SPLITS for domain in two[split]["domain"][:]) == {"books": 2_000, "dvd": 2_000}


def test_a_rows_split_does_not_depend_on_which_other_domains_are_loaded(load):
    alone = {row["id"]: row["split"] for row in rows(load("blitzer_mds:books"))}
    together = {row["id"]: row["split"] for row in rows(load("blitzer_mds")) if row["id"] in alone}
    assert together == alone


def test_sst2_keeps_its_phrase_train_and_labelled_test(load):
    sst2 = load("sst2")
    assert sizes(sst2) == {"train": 67_349, "validation": 872, "test": 1_821}
    assert class_counts(sst2["train"]) == {"neg": 29_780, "pos": 37_569}
    assert class_counts(sst2["validation"]) == {"neg": 428, "pos": 444}
    assert class_counts(sst2["test"]) == {"neg": 912, "pos": 909}
    assert not any("\r" in text for text in sst2["train"]["text"][:])  # train.tsv has CRLF line ends
    assert set(sst2["test"]["domain"][:]) == {"sst2"}


def test_rt_polarity_labels_by_file_and_reads_utf8(load):
    rt = load("rt_polarity")
    assert sizes(rt) == {"train": 7_464, "validation": 1_066, "test": 2_132}
    assert class_counts(rt["test"]) == {"neg": 1_066, "pos": 1_066}
    assert sum(class_counts(rt[split])["pos"] for split in SPLITS) == 5_331
    texts = [row["text"] for row in rows(rt)]
    assert any("clichés" in text for text in texts) and not any("Ã" in text for text in texts)


def test_customer_reviews_keeps_3775_rows_including_4_empty_sentences(load):
    cr = load("customer_reviews")
    all_rows = rows(cr)
    assert len(all_rows) == 3_775
    assert Counter(row["label"] for row in all_rows) == {0: 1_368, 1: 2_407}
    assert sorted(row["id"] for row in all_rows if not row["text"].strip()) == [
        "customer_reviews:1368", "customer_reviews:3691", "customer_reviews:3775", "customer_reviews:769"]


def test_financial_phrasebank_has_one_row_per_unique_sentence_at_its_highest_agreement(load):
    fpb = load("financial_phrasebank")
    all_rows = rows(fpb)
    # 4,846 lines in 50Agree hold 4,838 distinct sentences (8 repeats, 2 of them with conflicting labels).
    assert len(all_rows) == 4_838 == len({row["text"] for row in all_rows})
    assert label_names(fpb) == ["negative", "neutral", "positive"]
    assert Counter(label_names(fpb)[row["label"]] for row in all_rows) == {
        "neutral": 2_871, "positive": 1_363, "negative": 604}
    levels = Counter(round(row["agreement"], 2) for row in all_rows)
    assert levels == {1.0: 2_259, 0.75: 1_189, 0.66: 763, 0.5: 627}
    assert {row["domain"] for row in all_rows} == {"finance"}
    # Listed twice in 50Agree (neutral and positive) but positive at 66%: the higher level's label wins.
    conflicted = next(row for row in all_rows if row["id"] == "financial_phrasebank:79")
    assert conflicted["text"].startswith("TELECOMWORLDWIRE-7 April 2006-TJ Group Plc sells stake")
    assert (label_names(fpb)[conflicted["label"]], round(conflicted["agreement"], 2)) == ("positive", 0.66)
    assert any("ñ" in row["text"] for row in all_rows)  # the ISO-8859-1 files decoded as such


@pytest.mark.parametrize("subset, expected", [("allagree", 2_259), ("75agree", 3_448), ("66agree", 4_211)])
def test_financial_phrasebank_subsets_keep_rows_at_or_above_their_agreement(load, subset, expected):
    fpb = load(f"financial_phrasebank:{subset}")
    minimum = {"allagree": 1.0, "75agree": 0.75, "66agree": 0.66}[subset]
    all_rows = rows(fpb)
    assert len(all_rows) == expected
    assert min(row["agreement"] for row in all_rows) == pytest.approx(minimum)
    full = {row["id"]: row["text"] for row in rows(load("financial_phrasebank"))}
    assert all(full[row["id"]] == row["text"] for row in all_rows)  # ids do not depend on the subset


def test_xlmt_tweets_has_balanced_splits_per_language_and_decodes_unicode_escapes(load):
    tweets = load("xlmt_tweets")
    for split, per_class in (("train", 613), ("validation", 108), ("test", 290)):
        strata = Counter(zip(tweets[split]["domain"][:], tweets[split]["label"][:]))
        assert len(strata) == 8 * 3 and set(strata.values()) == {per_class}, split
    english = [row["text"] for row in rows(load("xlmt_tweets:english"))]
    assert not any("\\u2019" in text or "\\u002c" in text for text in english)
    assert any("i’m sorry but TAYLOR SWIFT" in text for text in english)


def test_chnsenticorp_keeps_7766_reviews_including_one_empty(load):
    chn = load("chnsenticorp")
    all_rows = rows(chn)
    assert Counter(row["label"] for row in all_rows) == {0: 2_444, 1: 5_322}
    assert [row["id"] for row in all_rows if not row["text"].strip()] == ["chnsenticorp:6376"]


@pytest.mark.parametrize("name", sorted(NAMED_SOURCES))
def test_every_named_source_shares_one_schema_with_unique_ids(load, name):
    dsd = load(name)
    # clinc150's classes are the intents of the domains read (all 150, then oos): its entry names none
    expected = record_features(NAMED_SOURCES[name].label_names or dsd["train"].features["label"].names)
    assert list(dsd) == list(SPLITS)
    assert all(dsd[split].features == expected for split in SPLITS)
    assert all(set(dsd[split]["split"][:]) == {split} for split in SPLITS)
    ids = [id_ for split in SPLITS for id_ in dsd[split]["id"][:]]
    assert len(ids) == len(set(ids)) and all(id_.startswith(f"{name}:") for id_ in ids)


def test_binary_and_three_way_sources_use_their_documented_class_names(load):
    assert label_names(load("uci_sentences")) == ["neg", "pos"]
    assert label_names(load("xlmt_tweets")) == ["negative", "neutral", "positive"]
    concatenated = datasets.concatenate_datasets([load("uci_sentences")["train"], load("rt_polarity")["train"]])
    assert len(concatenated) == 2_100 + 7_464


def test_sources_table_lists_every_named_source_and_finds_local_copies(data_dir, tmp_path):
    table = sources_table(data_dir)
    assert list(table.index) == list(NAMED_SOURCES)
    assert table["local_copy"].all()
    assert table.loc["blitzer_mds", "subsets"] == "books, dvd, electronics, kitchen_&_housewares"
    assert table.loc["financial_phrasebank", "classes"] == "negative, neutral, positive"
    assert not sources_table(tmp_path)["local_copy"].any() and not sources_table(None)["local_copy"].any()
    assert set(table["copy"]) == {"data dir"}
    hub = sources_table(None)["copy"]  # no data dir: the packaged UCI sentences, Hub copies, the rest missing
    assert (hub["uci_sentences"], hub["imdb"], hub["blitzer_mds"]) == ("packaged", "hub", "missing")
    assert sources_table(data_dir).loc["financial_phrasebank", "licence"].startswith("CC BY-NC-SA 3.0")


def test_carving_is_seeded(load):
    default = {row["id"]: row["split"] for row in rows(load("uci_sentences"))}
    same = {row["id"]: row["split"] for row in rows(load_source("uci_sentences", None, seed=42))}
    other = {row["id"]: row["split"] for row in rows(load_source("uci_sentences", None, seed=7))}
    assert same == default
    changed = sum(default[id_] != other[id_] for id_ in default)
    assert 600 < changed < 1_500  # about 1 - (0.7² + 0.1² + 0.2²) = 46% of 3,000 rows move


def test_split_percentages_set_the_carved_shares():
    uci = load_source("uci_sentences:yelp", None, validation_percentage=20.0, test_percentage=30.0)
    assert sizes(uci) == {"train": 500, "validation": 200, "test": 300}


def test_no_validation_share_keeps_those_rows_for_training_and_the_empty_split_saves_and_loads(data_dir, tmp_path):
    """validation_split_percentage 0 (fixed-epoch runs): Blitzer's 2,000 books reviews split 1,600 / 0 / 400, and
    the run folder's save of an empty split loads back (datasets writes no shard for one unless told)."""
    books = load_source("blitzer_mds:books", data_dir, validation_percentage=0.0, test_percentage=20.0)
    assert sizes(books) == {"train": 1600, "validation": 0, "test": 400}
    pipeline.save_dataset_atomically(books, tmp_path / "clean")
    assert {split: len(rows) for split, rows in datasets.load_from_disk(str(tmp_path / "clean")).items()} == sizes(books)
    assert Config(validation_split_percentage=0).validation_split_percentage == 0
    with pytest.raises(ValueError, match="test_split_percentage"):
        Config(test_split_percentage=0)


# ------------------------------------------------------------------------------------------- local files


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


# ---------------------------------------------------------------------------------------- the file reader


def test_reader_gives_sst2_dev_tsv_as_columns_with_each_rows_line(data_dir):
    records = read_records(data_dir / "sst2" / "dev.tsv", "tsv")
    assert list(records.columns) == ["label", "content"]
    assert len(records.positions) == 872 and records.positions[:2] == [2, 3] and records.positions[-1] == 873
    assert Counter(records.columns["label"]) == {"1": 444, "0": 428}
    assert records.where(0) == (str(data_dir / "sst2" / "dev.tsv"), "line", 2)


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


# ------------------------------------------------------------------------------------------- bad inputs


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


# -------------------------------------------------------------------------------------------- load_data


def test_load_data_concatenates_sources_and_caps_eval_and_test_stratified(data_dir):
    config = Config(sources=["uci_sentences", "customer_reviews"], data_dir=str(data_dir), max_eval_samples=100,
                    max_test_samples=300)
    dsd = load_data(config)
    assert sizes(dsd) == {"train": 2_100 + 2_642, "validation": 100, "test": 300}
    validation = Counter(zip(dsd["validation"]["domain"][:], dsd["validation"]["label"][:]))
    # 678 rows scaled to 100: uci strata of 50 -> 7.37, CR 137 -> 20.21 and 241 -> 35.55; the 3 rows left over go
    # to the largest remainders (CR pos, then the first two uci strata by name).
    assert validation == {("amazon", 0): 8, ("amazon", 1): 8, ("imdb", 0): 7, ("imdb", 1): 7, ("yelp", 0): 7,
                          ("yelp", 1): 7, ("customer_reviews", 0): 20, ("customer_reviews", 1): 36}
    again = load_data(config)
    assert again["test"]["id"][:] == dsd["test"]["id"][:]


def test_load_data_rejects_a_source_with_other_classes_neither_mapped_nor_intermediate(data_dir):
    config = Config(sources=["uci_sentences", "financial_phrasebank:allagree"], data_dir=str(data_dir))
    with pytest.raises(DataError) as error:
        load_data(config)
    assert str(error.value) == (
        "source 'financial_phrasebank:allagree' has classes ['negative', 'neutral', 'positive'], but the target's "
        "classes (those of 'uci_sentences', the first source listed without label_mapping or intermediate) are "
        "['neg', 'pos']: map its classes into the target's with label_mapping on the source (e.g. label_mapping: "
        "{negative: neg, neutral: null, positive: pos}; null drops a class's rows), or set intermediate: true to "
        "fine-tune on it first with its own classes and head")


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


def test_fingerprint_counts_rows_per_source_and_changes_with_a_text(data_dir):
    dsd = load_data(Config(sources=["uci_sentences:yelp", "customer_reviews"], data_dir=str(data_dir)))
    prints = fingerprint(dsd)
    assert {source: entry["rows"] for source, entry in prints["test"].items()} == {
        "customer_reviews": 755, "uci_sentences": 200}
    assert fingerprint(dsd) == prints
    shuffled = datasets.DatasetDict({split: dsd[split].shuffle(seed=1) for split in SPLITS})
    assert fingerprint(shuffled) == prints  # row order does not matter
    edited = dsd["test"].map(lambda row, i: {"text": row["text"] + "!" if i == 0 else row["text"]}, with_indices=True)
    changed = fingerprint(datasets.DatasetDict({**dsd, "test": edited}))
    assert changed["test"]["uci_sentences"]["sha256"] != prints["test"]["uci_sentences"]["sha256"]
    assert changed["test"]["customer_reviews"] == prints["test"]["customer_reviews"]


# -------------------------------------------------------------------------------------------- the Hub


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
