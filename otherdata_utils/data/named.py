"""Named data sets: the registry, finding a source's copy, and the readers of their Hub copies (`copies` reads the
local ones).

Takes a name such as "blitzer_mds:books,dvd" and a data dir (None: the Hugging Face Hub); hands on a `Table`.
A source's copy is, in this order: its folder in the data dir, the copy packaged in `embedded/` (UCI sentences
only), its Hub copy where no data dir is set.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import datasets
from datasets import DatasetDict

from ..config import DATA_DIR_ENV
from .copies import (BLITZER_DOMAINS, CLINC_DOMAINS, FPB_HUB_CONFIG, FPB_SUBSETS, FpbEntry, OUT_OF_SCOPE, UCI_FILES,
                     XLMT_LANGUAGES, phrasebank_table, read_blitzer_mds, read_chnsenticorp, read_clinc150,
                     read_customer_reviews, read_financial_phrasebank, read_imdb, read_rt_polarity, read_sst2,
                     read_uci_sentences, read_xlmt_tweets, unescape)
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
    entries: list[FpbEntry] = []
    # Every level, whatever the subset: a sentence's agreement is the highest level that lists it.
    for subset, level in FPB_SUBSETS.items():
        config = FPB_HUB_CONFIG.format(subset)
        for _, index, text, label, where in hub_rows(named, hub_dataset(named, config), config, "sentence"):
            entries.append((level, index + 1, text, label, where))
    return phrasebank_table(entries, subsets)


def _read_hub_xlmt(named: NamedSource, subsets: list[str]) -> Table:
    table = Table(named.name, named.label_names)
    for language in subsets:
        for split, index, text, label, where in hub_rows(named, hub_dataset(named, language), language, "text"):
            table.add(where, id=f"xlmt_tweets:{language}:{split}:{index}", text=unescape(text), label=label,
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
        "none stated; cite the paper", "stanfordnlp/imdb", read_imdb, _read_hub_single_domain, domain="imdb"),
    NamedSource(
        "uci_sentences", "Sentiment Labelled Sentences: 1,000 sentences each from Amazon, IMDB and Yelp, no "
        "splits", "Kotzias et al., From Group to Individual Labels using Deep Features, KDD 2015",
        BINARY_LABELS, list(UCI_FILES), "https://archive.ics.uci.edu/dataset/331/sentiment+labelled+sentences",
        "CC BY 4.0", None, read_uci_sentences),
    NamedSource(
        "blitzer_mds", "Multi-Domain Sentiment v2.0: 2,000 Amazon reviews in each of four product domains, "
        "with date, helpful votes and rating; no splits",
        "Blitzer, Dredze & Pereira, Biographies, Bollywood, Boom-boxes and Blenders, ACL 2007",
        BINARY_LABELS, list(BLITZER_DOMAINS), "https://www.cs.jhu.edu/~mdredze/datasets/sentiment/", "none stated",
        None, read_blitzer_mds,
        aliases={"kitchen": "kitchen_&_housewares"}),
    NamedSource(
        "sst2", "Stanford Sentiment Treebank, binary (GLUE layout): phrase-level train, sentence-level "
        "validation and labelled test", "Socher et al., Recursive Deep Models for Semantic Compositionality "
        "Over a Sentiment Treebank, EMNLP 2013", BINARY_LABELS, [], "https://nlp.stanford.edu/sentiment/",
        "none stated", "stanfordnlp/sst2", read_sst2,
        _read_hub_single_domain, domain="sst2", hub_text_column="sentence"),
    NamedSource(
        "rt_polarity", "Sentence polarity v1.0: 5,331 positive and 5,331 negative Rotten Tomatoes snippets, "
        "no splits", "Pang & Lee, Seeing Stars, ACL 2005", BINARY_LABELS, [],
        "https://www.cs.cornell.edu/people/pabo/movie-review-data/", "none stated (believed CC BY 4.0, unchecked)",
        "cornell-movie-review-data/rotten_tomatoes", read_rt_polarity, _read_hub_single_domain,
        domain="rt_polarity"),
    NamedSource(
        "customer_reviews", "Customer reviews (CR) of electronics products: 3,775 sentences, no splits",
        "Hu & Liu, Mining and Summarizing Customer Reviews, KDD 2004", BINARY_LABELS, [],
        "https://www.cs.uic.edu/~liub/FBS/sentiment-analysis.html", "none stated", "SetFit/CR",
        read_customer_reviews, _read_hub_single_domain, domain="customer_reviews"),
    NamedSource(
        "financial_phrasebank", "Financial PhraseBank v1.0: 4,838 unique financial news sentences, 3 classes, "
        "each at the highest annotator agreement it reached (subsets keep that level or above); no splits",
        "Malo et al., Good Debt or Bad Debt, JASIST 2014", THREE_WAY_LABELS, list(FPB_SUBSETS),
        "https://www.researchgate.net/publication/251231364_FinancialPhraseBank-v10",
        "CC BY-NC-SA 3.0 (non-commercial use only)", "takala/financial_phrasebank", read_financial_phrasebank, _read_hub_phrasebank, domain="finance",
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "xlmt_tweets", "XLM-T / UMSAB multilingual tweet sentiment: 8 languages, 1,839 / 324 / 870 tweets each, "
        "3 balanced classes", "Barbieri, Espinosa Anke & Camacho-Collados, XLM-T, LREC 2022", THREE_WAY_LABELS,
        list(XLMT_LANGUAGES), "https://github.com/cardiffnlp/xlm-t", "code Apache-2.0; Twitter's terms apply",
        "cardiffnlp/tweet_sentiment_multilingual", read_xlmt_tweets, _read_hub_xlmt,
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "clinc150", "CLINC150 intents: 150 intents in 10 domains (100 / 20 / 30 queries each) and out-of-scope "
        "queries (subset oos: 100 / 100 / 1,000); subsets are domains, a domain's classes its 15 intents",
        "Larson et al., An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction, EMNLP 2019",
        [], list(CLINC_DOMAINS) + [OUT_OF_SCOPE], "https://github.com/clinc/oos-eval", "CC BY 3.0", None,
        read_clinc150,
        classes_text="the chosen domains' intents (15 each), then oos where the oos subset is read"),
    NamedSource(
        "chnsenticorp", "ChnSentiCorp hotel reviews (Chinese): 7,766 reviews, no splits",
        "Tan Songbo, ChnSentiCorp", BINARY_LABELS, [], "https://github.com/SophonPlus/ChineseNlpCorpus",
        "none stated", None, read_chnsenticorp, domain="chnsenticorp"),
)}
