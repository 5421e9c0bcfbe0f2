"""Views of a loaded DatasetDict that the data tests of several tiers compare: split sizes, class counts, all rows.

Hands on plain dicts and lists, so an assertion shows what differs.
"""
from collections import Counter

from otherdata_utils.data import label_names

SPLITS = ("train", "validation", "test")


def sizes(dsd):
    return {split: len(dsd[split]) for split in SPLITS}


def class_counts(dataset):
    names = label_names(dataset)
    return dict(Counter(names[label] for label in dataset["label"][:]))


def rows(dsd):
    return [row for split in SPLITS for row in dsd[split].to_list()]
