"""Named data sets: the registry, the readers of their local copies (the shared/data layout) and of their Hub copies.

Takes a name such as "blitzer_mds:books,dvd" and a data dir (None: the Hugging Face Hub); hands on a `Table`.
A source's copy is, in this order: its folder in the data dir, the copy packaged in `embedded/` (UCI sentences
only), its Hub copy where no data dir is set.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import datasets
from datasets import DatasetDict

from ..config import DATA_DIR_ENV
from .local import column, read_file, read_json, read_lines
from .schema import BINARY_LABELS, THREE_WAY_LABELS, DataError, Table, Where, at, values

_HUB_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"  # data shipped inside the package, one folder a source


@dataclass(frozen=True)
class NamedSource:
    """A data set known by name: where its local copy and its Hub copy live and how they map to the schema."""

    name: str
    description: str
    citation: str
    label_names: list[str]
    domains: list[str]  # subset names accepted after "name:" (domains; agreement levels for financial_phrasebank)
    original: str  # where the authors publish it (a URL)
    licence: str  # as the authors state it
    hub_id: Optional[str]  # Hugging Face Hub copy used when no data dir is set; None: local copy only
    loader: Callable[[Path, list[str]], Table]  # reads data_dir/<name> for the chosen subsets
    hub_loader: Optional[Callable[["NamedSource", list[str]], Table]] = None
    domain: Optional[str] = None  # domain of every row where subsets are not domains
    aliases: dict[str, str] = field(default_factory=dict)  # other accepted subset names
    hub_text_column: str = "text"
    hub_revision: Optional[str] = None  # script-based Hub repos load from their parquet export
    classes_text: Optional[str] = None  # the classes in words, where they depend on the subsets read

    @property
    def classes(self) -> str:
        return self.classes_text or ", ".join(self.label_names)

    @property
    def packaged(self) -> Optional[Path]:
        """The copy shipped inside the package, if any."""
        folder = EMBEDDED_DIR / self.name
        return folder if folder.is_dir() else None


@dataclass(frozen=True)
class Copy:
    """Which copy of a named source is read: kind "data dir", "packaged", "hub" or "missing", and where it is."""

    kind: str
    location: str

    def __str__(self) -> str:
        return {"data dir": f"data dir copy {self.location}", "packaged": f"packaged copy {self.location}",
                "hub": f"Hugging Face Hub {self.location}", "missing": "missing"}[self.kind]


def find_copy(named: NamedSource, data_dir: Optional[Path]) -> Copy:
    """The copy `read_named` reads: the data dir's folder, else the packaged one, else (no data dir) the Hub's."""
    if data_dir is not None and (Path(data_dir) / named.name).is_dir():
        return Copy("data dir", str(Path(data_dir) / named.name))
    if named.packaged is not None:
        return Copy("packaged", str(named.packaged))
    if data_dir is None and named.hub_id is not None:
        return Copy("hub", named.hub_id)
    return Copy("missing", "")


# ------------------------------------------------------------------------------------- names and subsets


def parse_name(text: str) -> tuple[NamedSource, list[str]]:
    """The registry entry and subsets for "name" or "name:subset,subset"; no subsets named: all of them."""
    name, _, subset_text = text.partition(":")
    name = name.strip()
    if name not in NAMED_SOURCES:
        close = difflib.get_close_matches(name, list(NAMED_SOURCES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"unknown data source {name!r}.{hint} Named sources: {', '.join(NAMED_SOURCES)}; for a file "
                        "of your own give path instead of name")
    named = NAMED_SOURCES[name]
    requested = [part.strip() for part in subset_text.split(",") if part.strip()]
    if not requested:
        return named, list(named.domains)
    if not named.domains:
        raise DataError(f"source {name!r} has no subsets, got {subset_text!r}; use name: {name}")
    subsets = []
    for part in requested:
        subset = named.aliases.get(part.lower(), part.lower())
        if subset not in named.domains:
            close = difflib.get_close_matches(part, named.domains + list(named.aliases), n=2)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise DataError(f"{name}: unknown subset {part!r}.{hint} Valid subsets: {', '.join(named.domains)}"
                            + (f" (aliases: {', '.join(named.aliases)})" if named.aliases else ""))
        if subset not in subsets:
            subsets.append(subset)
    return named, subsets


def read_named(text: str, data_dir: Optional[Path]) -> Table:
    """A named source's rows from the copy `find_copy` names: ``data_dir/<name>``, else the packaged copy, else
    (``data_dir`` None) the Hugging Face Hub."""
    named, subsets = parse_name(text)
    copy = find_copy(named, data_dir)
    if copy.kind == "hub":
        return named.hub_loader(named, subsets)
    if copy.kind != "missing":
        return named.loader(Path(copy.location), subsets)
    if data_dir is None:
        raise DataError(f"{named.name} has no Hugging Face Hub copy: download it from {named.original} into a "
                        f"folder laid out like shared/data and set {DATA_DIR_ENV} (or data_dir in the params) to it")
    fetch = (f"; `python -m otherdata_utils data fetch {named.name} --data-dir {data_dir}` writes its Hub copy "
             f"there, or set {DATA_DIR_ENV}= (empty) to read it from the Hub" if named.hub_id
             else f"; it has no Hub copy: get it from {named.original}")
    raise DataError(f"{Path(data_dir) / named.name}: folder not found; data_dir ({data_dir}, or {DATA_DIR_ENV}) must "
                    f"hold one folder per named source, laid out like shared/data{fetch}")


# ----------------------------------------------------------------------------------------- local copies


def _parsed_label(text: str, lookup: dict[str, int], where: Where) -> int:
    label = lookup.get(text.strip())
    if label is None:
        raise DataError(f"{at(where)}: unknown label {text!r}; expected one of {', '.join(lookup)}")
    return label


_BINARY_IDS = {"0": 0, "1": 1}


def _read_imdb(folder: Path, subsets: list[str]) -> Table:
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


_UCI_FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}


def _read_uci_sentences(folder: Path, subsets: list[str]) -> Table:
    table = Table("uci_sentences", BINARY_LABELS)
    for domain in subsets:
        path = folder / _UCI_FILES[domain]
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


_BLITZER_DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]


def _read_blitzer_mds(folder: Path, subsets: list[str]) -> Table:
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


def _read_sst2(folder: Path, subsets: list[str]) -> Table:
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


def _read_rt_polarity(folder: Path, subsets: list[str]) -> Table:
    table = Table("rt_polarity", BINARY_LABELS)
    for label, name in enumerate(BINARY_LABELS):
        path = folder / f"rt-polarity.{name}"
        # The original release was Windows-1252; this copy decodes as UTF-8 (checked), so UTF-8 it is.
        for number, line in enumerate(read_lines(path, "utf-8"), start=1):
            table.add((str(path), "line", number), id=f"rt_polarity:{name}:{number}", text=line, label=label,
                      domain="rt_polarity")
    return table


def _read_customer_reviews(folder: Path, subsets: list[str]) -> Table:
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
_FpbEntry = tuple[float, int, str, int, Where]


def _read_financial_phrasebank(folder: Path, subsets: list[str]) -> Table:
    entries: list[_FpbEntry] = []
    for file_name, level, encoding in FPB_FILES:
        path = folder / file_name
        for number, line in enumerate(read_lines(path, encoding), start=1):
            sentence, at, label = line.rpartition("@")
            where = (str(path), "line", number)
            if not at:
                raise DataError(f"{at(where)}: expected sentence@label")
            entries.append((level, number, sentence, _parsed_label(label, _FPB_LABELS, where), where))
    return _phrasebank_table(entries, subsets)


def _phrasebank_table(entries: list[_FpbEntry], subsets: list[str]) -> Table:
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
    best: dict[str, _FpbEntry] = {}
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


def _unescape(text: str) -> str:
    """Literal ``\\u2019``-style escapes (English XLM-T tweets) as the characters they stand for."""
    def character(match: re.Match) -> str:
        if match[3] is None:
            high, low = int(match[1], 16), int(match[2], 16)
            return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        code = int(match[3], 16)
        # A lone surrogate cannot be stored as UTF-8; leave such an escape as written.
        return match[0] if 0xD800 <= code <= 0xDFFF else chr(code)

    return _UNICODE_ESCAPE.sub(character, text) if "\\u" in text else text


def _read_xlmt_tweets(folder: Path, subsets: list[str]) -> Table:
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
                          text=_unescape(text), label=label_id, domain=language, split=split)
    return table


def _read_chnsenticorp(folder: Path, subsets: list[str]) -> Table:
    table = Table("chnsenticorp", BINARY_LABELS)
    records = read_file(folder / "ChnSentiCorp_htl_all.csv", "csv", "utf-8")
    for row, (label, review) in enumerate(zip(column(records, "label"), column(records, "review"))):
        where = records.where(row)
        table.add(where, id=f"chnsenticorp:{where[2]}", text=review, label=_parsed_label(label, _BINARY_IDS, where),
                  domain="chnsenticorp")
    return table


_CLINC_DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute", "travel", "utility",
                  "work", "small_talk", "meta")  # domains.json's, in its order
_CLINC_SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))
OUT_OF_SCOPE = "oos"  # CLINC150's out-of-scope intent, a subset of its own: it belongs to no domain


def _read_clinc150(folder: Path, subsets: list[str]) -> Table:
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


# ------------------------------------------------------------------------------------------------- the Hub


_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_switch() -> Optional[str]:
    """The environment setting that forbids Hub downloads ("HF_HUB_OFFLINE=1"), or None."""
    for name in _OFFLINE_SWITCHES:
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{name}={os.environ[name]}"
    return None


def _network_failed(error: BaseException) -> bool:
    """Whether the error, or one it was raised from, is a failed connection (DNS, refused, timed out)."""
    while error is not None:
        if isinstance(error, (ConnectionError, TimeoutError)) or any(
                word in type(error).__name__ for word in ("Connect", "Timeout")):
            return True
        error = error.__cause__ or error.__context__
    return False


def hub_dataset(named: NamedSource, config: Optional[str] = None) -> DatasetDict:
    """One Hub config of a named source, as `datasets.load_dataset` gives it (from its cache where it has one)."""
    try:
        return datasets.load_dataset(named.hub_id, name=config, revision=named.hub_revision)
    except Exception as error:  # offline, network, missing repo or config, unsupported script
        what = f"could not load {named.name} from the Hugging Face Hub ({named.hub_id}" + (
            f", config {config})" if config else ")")
        fetch = f"`python -m otherdata_utils data fetch {named.name}`"
        switch = offline_switch()
        if switch is not None:
            reason = (f"offline mode is set ({switch}) — unset it or fetch the data with `data fetch` ({fetch} "
                      f"where the network is reachable writes a local copy; then set {DATA_DIR_ENV} to its data dir)")
        elif _network_failed(error):
            reason = (f"the network failed ({type(error).__name__}: {error}); check the connection, or set "
                      f"{DATA_DIR_ENV} to a local copy ({fetch} writes one)")
        else:
            reason = (f"{type(error).__name__}: {error}; set {DATA_DIR_ENV} (or data_dir) to a local copy laid out "
                      "like shared/data")
        raise DataError(f"{what}: {reason}") from None


def hub_rows(named: NamedSource, dsd: DatasetDict, config: Optional[str], text_column: str,
              label_column: str = "label") -> Iterator[tuple[str, int, str, int, Where]]:
    """(split, index, text, label id, where) for each labelled row of the Hub splits the schema knows."""
    for hub_split, rows in dsd.items():
        split = _HUB_SPLITS.get(hub_split)
        if split is None:
            continue  # e.g. imdb's unlabelled "unsupervised" split
        for name in (text_column, label_column):
            if name not in rows.column_names:
                raise DataError(f"{named.hub_id}{'/' + config if config else ''} {hub_split}: no column {name!r}; "
                                f"columns present: {rows.column_names}; the Hub copy changed: set {DATA_DIR_ENV} "
                                "to a local copy")
        for index, (text, label) in enumerate(zip(values(rows, text_column), values(rows, label_column))):
            if label is None or label < 0:
                continue  # hidden test labels (-1), as in GLUE's sst2
            where = (f"{named.hub_id}{'/' + config if config else ''} {hub_split}", "row", index + 1)
            if label >= len(named.label_names):
                raise DataError(f"{at(where)}: label id {label} is outside {named.label_names}")
            yield split, index, text, int(label), where


def _read_hub_single_domain(named: NamedSource, subsets: list[str]) -> Table:
    table = Table(named.name, named.label_names)
    for split, index, text, label, where in hub_rows(named, hub_dataset(named), None, named.hub_text_column):
        table.add(where, id=f"{named.name}:{split}:{index}", text=text, label=label, domain=named.domain or named.name,
                  split=split)
    return table


def _read_hub_phrasebank(named: NamedSource, subsets: list[str]) -> Table:
    entries: list[_FpbEntry] = []
    # Every level, whatever the subset: a sentence's agreement is the highest level that lists it.
    for subset, level in FPB_SUBSETS.items():
        config = FPB_HUB_CONFIG.format(subset)
        for _, index, text, label, where in hub_rows(named, hub_dataset(named, config), config, "sentence"):
            entries.append((level, index + 1, text, label, where))
    return _phrasebank_table(entries, subsets)


def _read_hub_xlmt(named: NamedSource, subsets: list[str]) -> Table:
    table = Table(named.name, named.label_names)
    for language in subsets:
        for split, index, text, label, where in hub_rows(named, hub_dataset(named, language), language, "text"):
            table.add(where, id=f"xlmt_tweets:{language}:{split}:{index}", text=_unescape(text), label=label,
                      domain=language, split=split)
    return table


# ------------------------------------------------------------------------------------------- the registry


# Domains and ids of the local copies (Hub copies number rows by their 0-based index in the Hub split instead):
#   imdb                  imdb                                   imdb:<train|test>:<neg|pos>:<review id>
#   uci_sentences         amazon, imdb, yelp                     uci_sentences:<domain>:<line>
#   blitzer_mds           books, dvd, electronics,               blitzer_mds:<domain>:<unique_id>
#                         kitchen_&_housewares (alias kitchen)
#   sst2                  sst2, not "movies": its train split    sst2:<split>:<line>
#                         holds phrases, and rt_polarity shares
#                         its source texts
#   rt_polarity           rt_polarity                            rt_polarity:<neg|pos>:<line>
#   customer_reviews      customer_reviews                       customer_reviews:<line>
#   financial_phrasebank  finance                                financial_phrasebank:<line in 50Agree>
#   xlmt_tweets           the language (arabic, english, ...)    xlmt_tweets:<language>:<split>:<line>
#   chnsenticorp          chnsenticorp                           chnsenticorp:<line>
NAMED_SOURCES: dict[str, NamedSource] = {source.name: source for source in (
    NamedSource(
        "imdb", "Large Movie Review Dataset: 25k train / 25k test IMDB reviews, balanced; validation is "
        "carved from train", "Maas et al., Learning Word Vectors for Sentiment Analysis, ACL 2011",
        BINARY_LABELS, [], "https://ai.stanford.edu/~amaas/data/sentiment/",
        "none stated; cite the paper", "stanfordnlp/imdb", _read_imdb, _read_hub_single_domain, domain="imdb"),
    NamedSource(
        "uci_sentences", "Sentiment Labelled Sentences: 1,000 sentences each from Amazon, IMDB and Yelp, no "
        "splits", "Kotzias et al., From Group to Individual Labels using Deep Features, KDD 2015",
        BINARY_LABELS, list(_UCI_FILES), "https://archive.ics.uci.edu/dataset/331/sentiment+labelled+sentences",
        "CC BY 4.0", None, _read_uci_sentences),
    NamedSource(
        "blitzer_mds", "Multi-Domain Sentiment v2.0: 2,000 Amazon reviews in each of four product domains, "
        "with date, helpful votes and rating; no splits",
        "Blitzer, Dredze & Pereira, Biographies, Bollywood, Boom-boxes and Blenders, ACL 2007",
        BINARY_LABELS, list(_BLITZER_DOMAINS), "https://www.cs.jhu.edu/~mdredze/datasets/sentiment/", "none stated",
        None, _read_blitzer_mds,
        aliases={"kitchen": "kitchen_&_housewares"}),
    NamedSource(
        "sst2", "Stanford Sentiment Treebank, binary (GLUE layout): phrase-level train, sentence-level "
        "validation and labelled test", "Socher et al., Recursive Deep Models for Semantic Compositionality "
        "Over a Sentiment Treebank, EMNLP 2013", BINARY_LABELS, [], "https://nlp.stanford.edu/sentiment/",
        "none stated", "stanfordnlp/sst2", _read_sst2,
        _read_hub_single_domain, domain="sst2", hub_text_column="sentence"),
    NamedSource(
        "rt_polarity", "Sentence polarity v1.0: 5,331 positive and 5,331 negative Rotten Tomatoes snippets, "
        "no splits", "Pang & Lee, Seeing Stars, ACL 2005", BINARY_LABELS, [],
        "https://www.cs.cornell.edu/people/pabo/movie-review-data/", "none stated (believed CC BY 4.0, unchecked)",
        "cornell-movie-review-data/rotten_tomatoes", _read_rt_polarity, _read_hub_single_domain,
        domain="rt_polarity"),
    NamedSource(
        "customer_reviews", "Customer reviews (CR) of electronics products: 3,775 sentences, no splits",
        "Hu & Liu, Mining and Summarizing Customer Reviews, KDD 2004", BINARY_LABELS, [],
        "https://www.cs.uic.edu/~liub/FBS/sentiment-analysis.html", "none stated", "SetFit/CR",
        _read_customer_reviews, _read_hub_single_domain, domain="customer_reviews"),
    NamedSource(
        "financial_phrasebank", "Financial PhraseBank v1.0: 4,838 unique financial news sentences, 3 classes, "
        "each at the highest annotator agreement it reached (subsets keep that level or above); no splits",
        "Malo et al., Good Debt or Bad Debt, JASIST 2014", THREE_WAY_LABELS, list(FPB_SUBSETS),
        "https://www.researchgate.net/publication/251231364_FinancialPhraseBank-v10",
        "CC BY-NC-SA 3.0 (non-commercial use only)", "takala/financial_phrasebank", _read_financial_phrasebank, _read_hub_phrasebank, domain="finance",
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "xlmt_tweets", "XLM-T / UMSAB multilingual tweet sentiment: 8 languages, 1,839 / 324 / 870 tweets each, "
        "3 balanced classes", "Barbieri, Espinosa Anke & Camacho-Collados, XLM-T, LREC 2022", THREE_WAY_LABELS,
        list(XLMT_LANGUAGES), "https://github.com/cardiffnlp/xlm-t", "code Apache-2.0; Twitter's terms apply",
        "cardiffnlp/tweet_sentiment_multilingual", _read_xlmt_tweets, _read_hub_xlmt,
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "clinc150", "CLINC150 intents: 150 intents in 10 domains (100 / 20 / 30 queries each) and out-of-scope "
        "queries (subset oos: 100 / 100 / 1,000); subsets are domains, a domain's classes its 15 intents",
        "Larson et al., An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction, EMNLP 2019",
        [], list(_CLINC_DOMAINS) + [OUT_OF_SCOPE], "https://github.com/clinc/oos-eval", "CC BY 3.0", None,
        _read_clinc150,
        classes_text="the chosen domains' intents (15 each), then oos where the oos subset is read"),
    NamedSource(
        "chnsenticorp", "ChnSentiCorp hotel reviews (Chinese): 7,766 reviews, no splits",
        "Tan Songbo, ChnSentiCorp", BINARY_LABELS, [], "https://github.com/SophonPlus/ChineseNlpCorpus",
        "none stated", None, _read_chnsenticorp, domain="chnsenticorp"),
)}
