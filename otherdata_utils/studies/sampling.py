"""Row selection shared by the studies: a domain's rows, seeded caps and orders, strata, equal-size arms.

Hands each study training sets that differ only in what the study compares (a pool, a period, a language).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from datasets import Dataset, concatenate_datasets

from ..clean import take_rows
from ..mix import apportion


def column(rows: Dataset, name: str) -> list:
    """A column as a list, read through Arrow (iterating the Dataset goes row by row through the formatter)."""
    return rows.with_format("arrow")[:].column(name).to_pylist()


def take(rows: Dataset, indices: Sequence[int], step: str) -> Dataset:
    """`clean.take_rows`: the rows at `indices`, fingerprinted by `step` (what decided the choice)."""
    return take_rows(rows, list(indices), step)


def domain_rows(split: Dataset, domain: str, by: str = "domain") -> Dataset:
    """The rows of `split` whose `by` column (the domain, or the source where groups are sources) is `domain`."""
    return take(split, [row for row, value in enumerate(column(split, by)) if value == domain], f"{by} {domain}")


def stratified_sample(rows: Dataset, limit: Optional[int], seed: int) -> Dataset:
    """At most `limit` rows keeping each label's share (largest remainder), a seeded draw in their original order."""
    if limit is None or len(rows) <= limit:
        return rows
    strata = ranked_strata(rows, seed, columns=("label",))
    counts = proportional({key: len(members) for key, members in strata.items()}, limit)
    return take(rows, sorted(row for key, members in strata.items() for row in members[:counts[key]]),
                f"stratified {limit} {seed}")


def seeded_cap(rows: Dataset, limit: Optional[int], seed: int) -> Dataset:
    """At most `limit` rows, a seeded random sample when there are more."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows.shuffle(seed=seed).select(range(limit))


def balanced_order(labels: Sequence[int], seed: Any) -> list[int]:
    """Positions 0..len(labels)-1 in a seeded random order that cycles through the labels: every prefix is as
    label-balanced as the rows allow, so the first n rows of a pool are a balanced sample for any n."""
    rng = np.random.default_rng(seed)
    by_label = [[int(i) for i in rng.permutation([row for row, value in enumerate(labels) if value == label])]
                for label in sorted(set(labels))]
    return [queue[position] for position in range(max(map(len, by_label), default=0))
            for queue in by_label if position < len(queue)]


def proportional(sizes: dict[Any, int], total: int) -> dict[Any, int]:
    """`total` split over keys in proportion to `sizes`, summing exactly (largest remainder), never above a size."""
    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    return apportion({key: n / available for key, n in sizes.items()}, total)


def ranked_strata(rows: Dataset, seed: int, columns: Sequence[str] = ("domain", "label"),
                  salt: int = 0) -> dict[tuple, list[int]]:
    """Row indices per stratum (a value of each column), each stratum in a seeded random order."""
    keys = list(zip(*(column(rows, name) for name in columns)))
    strata: dict[tuple, list[int]] = {}
    for row, key in enumerate(keys):
        strata.setdefault(key, []).append(row)
    rng = np.random.default_rng([seed, salt])
    return {key: [members[i] for i in rng.permutation(len(members))] for key, members in sorted(strata.items())}


def equal_size_arms(pools: dict[str, Dataset], recipes: dict[str, dict[str, float]], *, seed: int,
                    limit: Optional[int] = None) -> dict[str, Dataset]:
    """Training sets that differ only in where their rows come from: equal size, equal (domain, label) make-up.

    In each (domain, label) stratum every arm gets n rows, n being the fewest any pool named in a recipe holds
    there (all strata scaled down together so an arm has at most `limit` rows). A recipe {pool: share} splits
    those n rows between pools. Each pool's rows are ranked once per seed, so arms drawing on the same pool share
    its first rows (the "older" arm's rows start the "mixed" arm's older half): differences between arms are not
    differences between random draws.
    """
    used = sorted({pool for recipe in recipes.values() for pool in recipe})
    unknown = [pool for pool in used if pool not in pools]
    if unknown:
        raise ValueError(f"equal_size_arms: recipes name pools {unknown} that are not given ({sorted(pools)})")
    ranked = {name: ranked_strata(pools[name], seed, salt=position) for position, name in enumerate(used)}
    strata = sorted(set.intersection(*(set(ranked[name]) for name in used)))
    sizes = {key: min(len(ranked[name][key]) for name in used) for key in strata}
    if sum(sizes.values()) == 0:
        raise ValueError(f"equal_size_arms: pools {used} share no (domain, label) stratum, so no arm gets a row")
    if limit is not None:
        sizes = proportional(sizes, limit)
    arms = {}
    for arm, recipe in recipes.items():
        taken: dict[str, list[int]] = {name: [] for name in recipe}
        for key, n in sizes.items():
            for name, count in _split_by_shares(recipe, n).items():
                taken[name] += ranked[name][key][:count]
        parts = [take(pools[name], sorted(rows), f"equal_size_arms {arm} {name} {seed} {limit}")
                 for name, rows in taken.items() if rows]
        arms[arm] = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return arms


def _split_by_shares(shares: dict[str, float], total: int) -> dict[str, int]:
    weight = sum(shares.values())
    return apportion({name: share / weight for name, share in shares.items()}, total)
