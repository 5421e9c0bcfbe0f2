"""The data step on the real shared data: each named source's counts from its README, checked by parsing; splits,
mapping and fingerprints of the data sets themselves (local files and the Hub: tests/unit/test_data_files.py)."""
import time
from collections import Counter

import datasets
import pytest

from dataset_views import SPLITS, class_counts, rows, sizes
from otherdata_utils import pipeline
from otherdata_utils.config import Config
from otherdata_utils.data import (NAMED_SOURCES, DataError, fingerprint, label_names, load_data, load_source,
                                  read_records, record_features, sources_table)


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


# ---------------------------------------------------------------------------------------- the file reader


def test_reader_gives_sst2_dev_tsv_as_columns_with_each_rows_line(data_dir):
    records = read_records(data_dir / "sst2" / "dev.tsv", "tsv")
    assert list(records.columns) == ["label", "content"]
    assert len(records.positions) == 872 and records.positions[:2] == [2, 3] and records.positions[-1] == 873
    assert Counter(records.columns["label"]) == {"1": 444, "0": 428}
    assert records.where(0) == (str(data_dir / "sst2" / "dev.tsv"), "line", 2)


# ------------------------------------------------------------------------------------------- bad inputs


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


