"""The readers of the named data sets' local copies, laid out as their authors distributed them (the shared/data
layout): one function per source, from a folder and the chosen subsets to a `Table`.

Hands `named` (the registry) each reader and the constants that name a source's files and subsets.
"""
from __future__ import annotations

import re
from pathlib import Path

from .local import column, read_file, read_json, read_lines
from .schema import BINARY_LABELS, THREE_WAY_LABELS, DataError, Table, Where, at


def _parsed_label(text: str, lookup: dict[str, int], where: Where) -> int:
    label = lookup.get(text.strip())
    if label is None:
        raise DataError(f"{at(where)}: unknown label {text!r}; expected one of {', '.join(lookup)}")
    return label


_BINARY_IDS = {"0": 0, "1": 1}


def read_imdb(folder: Path, subsets: list[str]) -> Table:
    table = Table("imdb", BINARY_LABELS)
    for split in ("train", "test"):
        records = read_file(folder / f"imdb_{split}.jsonl.gz", "jsonl", "utf-8")
        columns = [column(records, name) for name in ("id", "text", "label", "rating")]
        for row, (own_id, text, label, rating) in enumerate(zip(*columns)):
            where = records.where(row)
            label = _parsed_label(str(label), _BINARY_IDS, where)
            table.add(where, id=f"imdb:{split}:{BINARY_LABELS[label]}:{own_id}", text=text,
                      label=label, domain="imdb", split=split, rating=None if rating is None else float(rating))
    return table


UCI_FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}


def read_uci_sentences(folder: Path, subsets: list[str]) -> Table:
    table = Table("uci_sentences", BINARY_LABELS)
    for domain in subsets:
        path = folder / UCI_FILES[domain]
        for number, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t")
            where = (str(path), "line", number)
            if not tab:
                raise DataError(f"{at(where)}: expected sentence<TAB>label")
            table.add(where, id=f"uci_sentences:{domain}:{number}", text=text,
                      label=_parsed_label(label, _BINARY_IDS, where), domain=domain)
    return table


BLITZER_DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]


def read_blitzer_mds(folder: Path, subsets: list[str]) -> Table:
    table = Table("blitzer_mds", BINARY_LABELS)
    records = read_file(folder / "blitzer_mds_labelled.jsonl.gz", "jsonl", "utf-8")
    names = ("domain", "unique_id", "text", "label", "rating", "date", "helpful")
    for row, (domain, unique_id, text, label, rating, date, helpful) in enumerate(
            zip(*(column(records, name) for name in names))):
        if domain not in subsets:
            continue
        where = records.where(row)
        votes = re.fullmatch(r"\s*(\d+) of (\d+)\s*", helpful or "")
        if helpful and votes is None:
            raise DataError(f"{at(where)}: helpful {helpful!r} is not 'x of y' votes")
        table.add(where, id=f"blitzer_mds:{domain}:{unique_id}", text=text,
                  label=_parsed_label(str(label), _BINARY_IDS, where), domain=domain, date=date or None,
                  helpful_votes=int(votes[1]) if votes else None, total_votes=int(votes[2]) if votes else None,
                  rating=None if rating is None else float(rating))
    return table


def read_sst2(folder: Path, subsets: list[str]) -> Table:
    table = Table("sst2", BINARY_LABELS)
    # GLUE layout: train.tsv names its text column "sentence", dev.tsv and test.tsv "content"; test is labelled here.
    for file_name, split, text_column in (("train.tsv", "train", "sentence"), ("dev.tsv", "validation", "content"),
                                          ("test.tsv", "test", "content")):
        if split == "test" and not (folder / file_name).exists():
            continue  # a copy fetched from the Hub: its test labels are hidden, so test is carved from train
        records = read_file(folder / file_name, "tsv", "utf-8")
        texts, labels = column(records, text_column), column(records, "label")
        for row, (text, label) in enumerate(zip(texts, labels)):
            where = records.where(row)
            table.add(where, id=f"sst2:{split}:{where[2]}", text=text,
                      label=_parsed_label(label, _BINARY_IDS, where), domain="sst2", split=split)
    return table


def read_rt_polarity(folder: Path, subsets: list[str]) -> Table:
    table = Table("rt_polarity", BINARY_LABELS)
    for label, name in enumerate(BINARY_LABELS):
        path = folder / f"rt-polarity.{name}"
        # The original release was Windows-1252; this copy decodes as UTF-8 (checked), so UTF-8 it is.
        for number, line in enumerate(read_lines(path, "utf-8"), start=1):
            table.add((str(path), "line", number), id=f"rt_polarity:{name}:{number}", text=line, label=label,
                      domain="rt_polarity")
    return table


def read_customer_reviews(folder: Path, subsets: list[str]) -> Table:
    table = Table("customer_reviews", BINARY_LABELS)
    path = folder / "custrev.all"
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        where = (str(path), "line", number)
        # Four lines hold a label and no sentence; they are kept here and dropped by cleaning (min_text_chars).
        table.add(where, id=f"customer_reviews:{number}", text=text, label=_parsed_label(label, _BINARY_IDS, where),
                  domain="customer_reviews")
    return table


# File, agreement level, encoding: only AllAgree is UTF-8 (README), the others ISO-8859-1.
FPB_FILES = (("Sentences_AllAgree.txt", 1.0, "utf-8"), ("Sentences_75Agree.txt", 0.75, "iso-8859-1"),
             ("Sentences_66Agree.txt", 0.66, "iso-8859-1"), ("Sentences_50Agree.txt", 0.5, "iso-8859-1"))
FPB_SUBSETS = {"allagree": 1.0, "75agree": 0.75, "66agree": 0.66, "50agree": 0.5}
_FPB_LABELS = {name: i for i, name in enumerate(THREE_WAY_LABELS)}
FPB_HUB_CONFIG = "sentences_{}"  # the Hub copy's config of a subset

# One annotated sentence as read from a level's file (or Hub config): level, 1-based line, sentence, label id.
FpbEntry = tuple[float, int, str, int, Where]


def read_financial_phrasebank(folder: Path, subsets: list[str]) -> Table:
    entries: list[FpbEntry] = []
    for file_name, level, encoding in FPB_FILES:
        path = folder / file_name
        for number, line in enumerate(read_lines(path, encoding), start=1):
            sentence, at, label = line.rpartition("@")
            where = (str(path), "line", number)
            if not at:
                raise DataError(f"{at(where)}: expected sentence@label")
            entries.append((level, number, sentence, _parsed_label(label, _FPB_LABELS, where), where))
    return phrasebank_table(entries, subsets)


def phrasebank_table(entries: list[FpbEntry], subsets: list[str]) -> Table:
    """One row per unique sentence, at the highest agreement level it appears at, with that level's label.

    Lower-agreement files repeat the higher ones; a sentence listed twice with different labels in 50Agree
    takes the label of the higher level that lists it. Ids are the sentence's first line in the 50Agree file,
    which holds every sentence, so they do not change with the subset.
    """
    minimum = min(FPB_SUBSETS[subset] for subset in subsets)
    line_in_all: dict[str, int] = {}
    for level, number, sentence, _, _ in entries:
        if level == 0.5:
            line_in_all.setdefault(sentence, number)
    best: dict[str, FpbEntry] = {}
    for entry in sorted(entries, key=lambda entry: (-entry[0], entry[1])):
        best.setdefault(entry[2], entry)
    table = Table("financial_phrasebank", THREE_WAY_LABELS)
    for sentence in sorted(best, key=lambda sentence: line_in_all.get(sentence, 0)):
        level, number, _, label, where = best[sentence]
        if level < minimum:
            continue
        own = line_in_all.get(sentence, f"{level}:{number}")
        table.add(where, id=f"financial_phrasebank:{own}", text=sentence, label=label, domain="finance",
                  agreement=level)
    return table


XLMT_LANGUAGES = ["arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish"]
# \uXXXX escapes, surrogate pairs first so that emoji written as two escapes decode to one character.
_UNICODE_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")


def unescape(text: str) -> str:
    """Literal ``\\u2019``-style escapes (English XLM-T tweets) as the characters they stand for."""
    def character(match: re.Match) -> str:
        if match[3] is None:
            high, low = int(match[1], 16), int(match[2], 16)
            return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        code = int(match[3], 16)
        # A lone surrogate cannot be stored as UTF-8; leave such an escape as written.
        return match[0] if 0xD800 <= code <= 0xDFFF else chr(code)

    return _UNICODE_ESCAPE.sub(character, text) if "\\u" in text else text


def read_xlmt_tweets(folder: Path, subsets: list[str]) -> Table:
    table = Table("xlmt_tweets", THREE_WAY_LABELS)
    for language in subsets:
        for file_split, split in (("train", "train"), ("val", "validation"), ("test", "test")):
            text_path = folder / language / f"{file_split}_text.txt"
            label_path = folder / language / f"{file_split}_labels.txt"
            texts, labels = read_lines(text_path), read_lines(label_path)
            if len(texts) != len(labels):
                raise DataError(f"{text_path} has {len(texts)} lines but {label_path} has {len(labels)}; the two "
                                "files must be parallel, one line per tweet")
            for number, (text, label) in enumerate(zip(texts, labels), start=1):
                label_id = _parsed_label(label, {"0": 0, "1": 1, "2": 2}, (str(label_path), "line", number))
                table.add((str(text_path), "line", number), id=f"xlmt_tweets:{language}:{split}:{number}",
                          text=unescape(text), label=label_id, domain=language, split=split)
    return table


def read_chnsenticorp(folder: Path, subsets: list[str]) -> Table:
    table = Table("chnsenticorp", BINARY_LABELS)
    records = read_file(folder / "ChnSentiCorp_htl_all.csv", "csv", "utf-8")
    for row, (label, review) in enumerate(zip(column(records, "label"), column(records, "review"))):
        where = records.where(row)
        table.add(where, id=f"chnsenticorp:{where[2]}", text=review, label=_parsed_label(label, _BINARY_IDS, where),
                  domain="chnsenticorp")
    return table


CLINC_DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute", "travel", "utility",
                  "work", "small_talk", "meta")  # domains.json's, in its order
_CLINC_SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))
OUT_OF_SCOPE = "oos"  # CLINC150's out-of-scope intent, a subset of its own: it belongs to no domain


def read_clinc150(folder: Path, subsets: list[str]) -> Table:
    """The chosen domains' intents (domains.json order, then `oos` last where asked for), one row per query.

    A row's domain is its intent's domain; out-of-scope queries are domain "oos". Ids are the query's place in its
    split's list (``clinc150:test:17``, ``clinc150:oos_test:3``), so they do not change with the subsets read.
    """
    domains_path, data_path = folder / "domains.json", folder / "data_full.json.gz"
    intents_of = _json_object(read_json(domains_path), domains_path)
    domain_of = {intent: domain for domain, intents in intents_of.items() for intent in intents}
    names = [intent for domain, intents in intents_of.items() if domain in subsets for intent in intents]
    if OUT_OF_SCOPE in subsets:
        names.append(OUT_OF_SCOPE)
    lookup = {name: i for i, name in enumerate(names)}
    splits = _json_object(read_json(data_path), data_path)
    table = Table("clinc150", names)
    for prefix, domain in (("", None), ("oos_", OUT_OF_SCOPE)):
        if domain == OUT_OF_SCOPE and OUT_OF_SCOPE not in subsets:
            continue
        for file_split, split in _CLINC_SPLITS:
            key = prefix + file_split
            if key not in splits:
                raise DataError(f"{data_path}: no list {key!r}; the local copy is not laid out like shared/data")
            for number, (text, intent) in enumerate(splits[key], start=1):
                where = (str(data_path), f"{key} item", number)
                row_domain = domain or domain_of.get(intent)
                if row_domain is None:
                    raise DataError(f"{at(where)}: intent {intent!r} is in no domain of {domains_path}")
                if row_domain not in subsets:
                    continue
                table.add(where, id=f"clinc150:{prefix}{file_split}:{number}", text=text,
                          label=_parsed_label(intent, lookup, where), domain=row_domain, split=split)
    return table


def _json_object(value: object, path: Path) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected one JSON object; the local copy is not laid out like shared/data")
    return value
