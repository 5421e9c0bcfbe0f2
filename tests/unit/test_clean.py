"""Cleaning: normalisation, empty/duplicate rows, and leakage between splits, on small tables and on IMDB/Blitzer."""
import json

import pytest
from datasets import Dataset, DatasetDict

from otherdata_utils import data
from otherdata_utils.clean import clean, dedupe_key, find_leakage, normalize_text
from otherdata_utils.config import Config


def _split(split: str, rows: list[tuple[str, object, int, str]]) -> Dataset:
    """Rows of (id, text, label, source) in the common schema; domain = source."""
    features = data.record_features(["neg", "pos"])
    columns = {name: [] for name in features}
    for row_id, text, label, source in rows:
        values = {"id": row_id, "text": text, "label": label, "domain": source, "source": source, "split": split}
        for name in features:
            columns[name].append(values.get(name))
    return Dataset.from_dict(columns, features=features)


@pytest.fixture
def messy() -> DatasetDict:
    return DatasetDict(
        train=_split("train", [
            ("t1", "Great film!<br /><br />Loved it.", 1, "a"),
            ("t2", "Great film! Loved it.", 1, "a"),  # exact duplicate of t1 once normalised
            ("t3", "GREAT film... loved it", 1, "b"),  # near duplicate of t1
            ("t4", "   ", 0, "a"),  # empty after normalisation
            ("t5", None, 0, "b"),  # missing
            ("t6", "ok", 0, "a"),  # shorter than min_text_chars=3
            ("t7", "Dull and far too long.", 0, "a"),  # exact in test (other source)
            ("t8", "Not my cup of tea", 0, "b"),  # near in validation
            ("t9", "A quiet, careful drama.", 1, "b"),
            ("t10", "Great film! Loved it.", 0, "b"),  # duplicate with a conflicting label
        ]),
        validation=_split("validation", [("v1", "not my cup of tea!", 0, "b"), ("v2", "Sharp writing.", 1, "a")]),
        test=_split("test", [("s1", "Dull and far too long.", 0, "b"), ("s2", "Dull and far too long.", 0, "b"),
                             ("s3", "Warm &amp; funny.", 1, "a")]),
    )


def test_normalize_text_resolves_html_breaks_entities_unicode_and_whitespace():
    assert normalize_text("  Fine<br /><br />film &amp; cast<BR>e\u0301  \t end ") == "Fine film & cast \u00e9 end"


def test_dedupe_key_folds_case_punctuation_and_whitespace_but_not_words():
    assert dedupe_key("Great   movie!!") == dedupe_key("great movie") == "great movie"
    assert dedupe_key("Très   BIEN…") == "très bien"
    assert dedupe_key("great movie") != dedupe_key("great movies")


def test_cleaning_report_counts_add_up_per_source_and_split(messy):
    cleaned, report = clean(messy, Config(min_text_chars=3))
    for (source, split), rows_in in report.rows_in.items():
        dropped = report.dropped(split=split, source=source)
        assert rows_in - dropped == report.rows_out[(source, split)]
        assert sum(1 for s in cleaned[split]["source"] if s == source) == report.rows_out[(source, split)]
    assert report.dropped("empty") == 3
    assert report.dropped("duplicate") == 2 + 1  # t2, t10 in train; s2 in test
    assert report.dropped("near_duplicate") == 1  # t3
    assert report.dropped("leakage") == 2  # t7 (exact, test), t8 (near, validation)
    assert sorted(cleaned["train"]["id"]) == ["t1", "t9"]
    assert cleaned["train"]["text"][0] == "Great film! Loved it."
    reasons = set(report.to_frame()["reason"])
    assert "same text as an earlier row with a different label" in reasons
    assert "shorter than 3 characters after normalisation" in reasons


def test_leakage_is_removed_from_train_only_and_validation_test_keep_their_rows(messy):
    kept, with_removal = clean(messy, Config())
    reported, _ = clean(messy, Config(remove_leakage=False))
    for split in ("validation", "test"):
        assert kept[split]["id"] == reported[split]["id"]
    assert {"t7", "t8"} <= set(reported["train"]["id"])
    assert not {"t7", "t8"} & set(kept["train"]["id"])
    assert find_leakage(kept).leaked_ids("train") == set()


def test_cleaning_reports_the_leakage_find_leakage_finds_in_the_rows_it_kept(messy):
    kept, report = clean(messy, Config(remove_leakage=False))
    assert report.leakage.pairs and report.leakage.pairs == find_leakage(kept).pairs
    # searched after dedupe: train keeps t1, t6, t7, t8, t9; validation v1, v2; test s1, s3
    assert report.leakage.rows == find_leakage(kept).rows == {"train": 5, "validation": 2, "test": 2}


def test_find_leakage_marks_exact_near_and_cross_source_pairs(messy):
    report = find_leakage(messy)
    pairs = {(p.id, p.other_id): p for p in report.pairs}
    assert pairs[("t7", "s1")].exact and not pairs[("t7", "s1")].same_source
    assert not pairs[("t8", "v1")].exact and pairs[("t8", "v1")].same_source
    assert report.shared_texts("train", "test", exact_only=True) == 1  # s1 and s2 are one text
    assert report.shared_texts("train", "validation", exact_only=True) == 0
    assert report.shared_texts("train", "validation") == 1
    exact_only = find_leakage(messy, near=False)
    assert ("t8", "v1") not in {(p.id, p.other_id) for p in exact_only.pairs}


def test_cleaning_report_writes_json_and_a_tidy_table(messy):
    _, report = clean(messy, Config(min_text_chars=3))
    written = json.loads(json.dumps(report.to_dict()))
    assert written["leakage"]["leaked_train_rows"] == 2
    assert sum(d["dropped"] for d in written["drops"]) == report.dropped() == 9
    assert list(report.to_frame().columns) == ["step", "source", "split", "dropped", "reason"]
    assert report.counts_frame()[["rows_in", "rows_out"]].sum().tolist() == [15, 6]
    assert "Cleaning kept 6 of 15 rows." in report.summary()


def test_dedupe_test_false_keeps_a_benchmark_test_split_whole_and_train_unchanged():
    rows = {
        "train": ["good film", "good film", "bad plot", "shared text", "fine acting", "dull pacing"],
        "test": ["shared text", "awful", "awful", "superb"],
    }
    dsd = DatasetDict({
        split: Dataset.from_dict({
            "id": [f"{split}-{i}" for i in range(len(texts))], "text": texts,
            "label": [i % 2 for i in range(len(texts))], "domain": ["d"] * len(texts), "source": ["s"] * len(texts),
        }) for split, texts in rows.items()
    })
    deduped, _ = clean(dsd, Config())
    whole, report = clean(dsd, Config(dedupe_test=False))
    assert deduped["test"].num_rows == 3 and whole["test"].num_rows == 4  # "awful" twice stays in test
    # train loses the same rows either way: its duplicate and the row leaked into test
    assert whole["train"]["id"] == deduped["train"]["id"] == ["train-0", "train-2", "train-4", "train-5"]
    assert report.settings["dedupe_test"] is False
