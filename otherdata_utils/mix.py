"""Mixing: few-shot sampling of the target domain, then other data mixed in by a strategy and a row budget.

Takes the cleaned train split and hands on the training set plus a `MixReport` (requested vs achieved mix).

Design: the target is one group among the others (groups are domains or sources, `Config.mix_by`). Every
strategy except `concat` turns group sizes into shares, then shares into row counts over one budget N
(`max_train_samples`, else every row of the groups that get a share). A group asked for more rows than it has
is upsampled: each row repeated ⌊count/available⌋ times, the rest drawn without replacement. So the strategies
differ mostly in how far a tiny (few-shot) target is upsampled: not at all under `concat` and `proportional`,
a little under `temperature`, up to an equal share under `uniform`, as set under `fixed`. With a budget,
`target_only` repeats the target up to N rows, so every arm of a study trains on the same number of rows.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset

from .clean import take_rows
from .config import Config

STRATEGIES = ("target_only", "concat", "proportional", "fixed", "temperature", "uniform")


def _label_name(train: Dataset, label: Any) -> str:
    feature = train.features.get("label")
    return feature.int2str(label) if isinstance(feature, ClassLabel) else str(label)


def few_shot(train: Dataset, k: int, *, seed: int, domain: Optional[str] = None, column: str = "domain") -> Dataset:
    """k rows per class, seeded and stratified.

    With `domain`, only rows whose `column` equals it are sampled and every other row is kept as it is: the
    result is the whole set with the target cut to k per class. Without `domain`, the whole set is sampled.
    Rows keep their original order. Every class of the label feature needs at least k rows there.
    """
    if k < 1:
        raise ValueError(f"few_shot: k must be ≥ 1, got {k}")
    labels = train.with_format("arrow")[:].column("label").to_pylist()
    if domain is None:
        candidates = list(range(len(train)))
        where = "the training set"
    else:
        if column not in train.column_names:
            raise ValueError(f"few_shot: no column {column!r} to find domain {domain!r} in ({train.column_names})")
        groups = train.with_format("arrow")[:].column(column).to_pylist()
        candidates = [row for row, group in enumerate(groups) if group == domain]
        if not candidates:
            raise ValueError(f"few_shot: no training rows with {column} = {domain!r}; "
                             f"{column}s present: {sorted(set(groups))}")
        where = f"{column} {domain!r}"
    by_class: dict[Any, list[int]] = defaultdict(list)
    for row in candidates:
        by_class[labels[row]].append(row)
    feature = train.features.get("label")
    classes = list(range(feature.num_classes)) if isinstance(feature, ClassLabel) else sorted(by_class)
    short = [f"{_label_name(train, c)!r} has {len(by_class[c])}" for c in classes if len(by_class[c]) < k]
    if short:
        raise ValueError(f"few_shot: k={k} per class, but in {where} class " + ", class ".join(short)
                         + " rows; lower few_shot_k or pick a larger target")
    rng = np.random.default_rng(seed)
    chosen = set()
    for c in classes:
        chosen.update(int(row) for row in rng.choice(by_class[c], size=k, replace=False))
    candidate_set = set(candidates)
    rows = [row for row in range(len(train)) if row not in candidate_set or row in chosen]
    return take_rows(train, rows, f"few_shot {k} {seed} {column}={domain}")


def mixing_weights(sizes: dict[str, int], strategy: str, *, temperature: float = 1.0,
                   ratios: Optional[dict[str, float]] = None, target: Optional[str] = None) -> dict[str, float]:
    """Each group's share of the mix (summing to 1) from its available rows.

    target_only: the target alone. concat, proportional: ∝ n_i. temperature: ∝ n_i^(1/T) (T=1 proportional,
    T→∞ uniform). uniform: equal. fixed: `ratios` normalised (groups not named get 0). Empty groups get 0.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mixing strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if not sizes or any(n < 0 for n in sizes.values()) or sum(sizes.values()) == 0:
        raise ValueError(f"mixing needs at least one group with rows, got sizes {sizes}")
    if strategy == "target_only":
        if target not in sizes:
            raise ValueError(f"mixing_strategy 'target_only' needs the target group, got {target!r}; "
                             f"groups: {sorted(sizes)}")
        raw = {group: float(group == target) for group in sizes}
    elif strategy in ("concat", "proportional"):
        raw = {group: float(n) for group, n in sizes.items()}
    elif strategy == "temperature":
        if temperature <= 0:
            raise ValueError(f"mixing_temperature must be > 0, got {temperature}")
        # log-space keeps n^(1/T) finite for large n and small T
        logs = {group: math.log(n) / temperature for group, n in sizes.items() if n > 0}
        top = max(logs.values())
        raw = {group: math.exp(logs[group] - top) if group in logs else 0.0 for group in sizes}
    elif strategy == "uniform":
        raw = {group: float(n > 0) for group, n in sizes.items()}
    else:
        ratios = ratios or {}
        unknown = sorted(set(ratios) - set(sizes))
        if unknown:
            raise ValueError(f"mixing_ratios name groups that are not in the training data: {unknown}; "
                             f"groups: {sorted(sizes)}")
        empty = sorted(group for group, share in ratios.items() if share > 0 and sizes[group] == 0)
        if empty:
            raise ValueError(f"mixing_ratios give a share to groups without rows: {empty}")
        raw = {group: float(ratios.get(group, 0.0)) for group in sizes}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError(f"mixing strategy {strategy!r} gives every group a zero share (ratios {ratios})")
    return {group: value / total for group, value in raw.items()}


def apportion(weights: dict[Any, float], budget: int) -> dict[Any, int]:
    """round(p_i·N) by largest remainder, so the counts sum to N exactly (ties go to the earlier group)."""
    exact = {group: p * budget for group, p in weights.items()}
    counts = {group: math.floor(value) for group, value in exact.items()}
    order = sorted(weights, key=lambda group: (-(exact[group] - counts[group]), list(weights).index(group)))
    for group in order[: budget - sum(counts.values())]:
        counts[group] += 1
    return counts


def _sample(rows: list[int], count: int, rng: np.random.Generator) -> list[int]:
    """`count` of `rows`: without replacement while they last; beyond that each row repeats, the rest drawn anew."""
    repeats, rest = divmod(count, len(rows)) if rows else (0, 0)
    picked = rows * repeats
    picked += [rows[i] for i in rng.choice(len(rows), size=rest, replace=False)] if rest else []
    return picked


@dataclass(frozen=True)
class GroupMix:
    """One group's part of the mix."""

    group: str
    is_target: bool
    available: int  # rows of the group after few-shot sampling
    requested_share: float
    requested_rows: int
    achieved_rows: int
    achieved_share: float
    upsampled: bool  # rows repeated because the group had fewer than requested


@dataclass
class MixReport:
    """The mix asked for and the mix obtained, per group, with row counts by source, domain and label."""

    strategy: str
    mix_by: str
    target: Optional[str]
    budget: int
    seed: int
    temperature: Optional[float]
    few_shot_k: Optional[int]
    target_rows_before_few_shot: Optional[int]
    groups: list[GroupMix]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> value -> rows in the mix

    @property
    def total_rows(self) -> int:
        return sum(group.achieved_rows for group in self.groups)

    def rows_by(self, column: str) -> dict[str, int]:
        """Rows of the mixed training set per value of `column` ("source", "domain" or "label")."""
        if column not in self.counts:
            raise KeyError(f"the mix report counts rows by {sorted(self.counts)}, not {column!r}")
        return dict(self.counts[column])

    def to_frame(self) -> pd.DataFrame:
        """One row per group: available, requested share and rows, achieved rows and share, upsampled."""
        return pd.DataFrame([asdict(group) for group in self.groups])

    def summary(self) -> str:
        target = f" with target {self.mix_by} {self.target!r}" if self.target else ""
        parts = [f"Mixed {self.total_rows:,} training rows from {len(self.groups)} {self.mix_by}s by "
                 f"'{self.strategy}'{target}."]
        if self.few_shot_k:
            parts.append(f"The target was cut to {self.few_shot_k} rows per class "
                         f"({self.target_rows_before_few_shot:,} rows before).")
        shares = ", ".join(f"{g.group} {g.achieved_share:.1%}" for g in self.groups if g.achieved_rows)
        parts.append(f"Achieved shares: {shares}.")
        upsampled = [f"{g.group} ({g.achieved_rows:,} rows from {g.available:,})" for g in self.groups if g.upsampled]
        if upsampled:
            parts.append("Upsampled (rows repeated): " + ", ".join(upsampled) + ".")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**{key: value for key, value in asdict(self).items() if key != "groups"},
                "groups": self.to_frame().to_dict(orient="records"), "total_rows": self.total_rows,
                "summary": self.summary()}


def _unique_ids(ids: list[str]) -> list[str]:
    """Repeated rows get '#r1', '#r2', … after their id, so ids stay unique in an upsampled set."""
    seen: Counter[str] = Counter()
    out = []
    for row_id in ids:
        out.append(f"{row_id}#r{seen[row_id]}" if seen[row_id] else row_id)
        seen[row_id] += 1
    return out


def mix(train: Dataset, config: Config, *, seed: Optional[int] = None) -> tuple[Dataset, MixReport]:
    """The training set for `config`: few-shot target, then groups mixed by `mixing_strategy` within the budget."""
    seed = config.seed if seed is None else seed
    column, target, strategy = config.mix_by, config.target_domain, config.mixing_strategy
    if column not in train.column_names:
        raise ValueError(f"mix_by {column!r}: the training set has no such column ({train.column_names})")
    groups_of = train.with_format("arrow")[:].column(column).to_pylist()
    present = sorted(set(groups_of))
    if target is not None and target not in present:
        raise ValueError(f"target_domain {target!r} is not a {column} of the training data; {column}s: {present}")

    before = None
    if config.few_shot_k is not None:
        before = groups_of.count(target)
        train = few_shot(train, config.few_shot_k, seed=seed, domain=target, column=column)
        groups_of = train.with_format("arrow")[:].column(column).to_pylist()

    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, group in enumerate(groups_of):
        rows_of[group].append(row)
    # the target first, then the others by name: a stable order for reports and for tie-breaks
    order = ([target] if target is not None else []) + [g for g in present if g != target]
    sizes = {group: len(rows_of[group]) for group in order}
    weights = mixing_weights(sizes, strategy, temperature=config.mixing_temperature,
                             ratios=config.mixing_ratios, target=target)
    rng = np.random.default_rng(seed)

    if strategy == "concat":
        budget = min(config.max_train_samples or len(train), len(train))
        picked = (list(range(len(train))) if budget == len(train)
                  else sorted(int(row) for row in rng.choice(len(train), size=budget, replace=False)))
        requested = apportion(weights, budget)  # for the report: concat samples rows, not groups
    else:
        budget = config.max_train_samples or sum(sizes[g] for g in order if weights[g] > 0)
        requested = apportion(weights, budget)
        picked = []
        for group in order:
            picked += _sample(rows_of[group], requested[group], rng)
    report = MixReport(
        strategy=strategy, mix_by=column, target=target, budget=budget, seed=seed,
        temperature=config.mixing_temperature if strategy == "temperature" else None,
        few_shot_k=config.few_shot_k, target_rows_before_few_shot=before, groups=[])
    return _shuffled_mix(train, picked, groups_of, sizes, weights, requested, report, rng)


def mix_additive(train: Dataset, config: Config, *, seed: int, total: Optional[int]) -> tuple[Dataset, MixReport]:
    """Every target row of `train` at least once, other groups ADDED under `mixing_strategy`.

    The strategy's shares (`mixing_weights`, the target's size being its rows here) set how many rows each group
    gets. With `total` the mix holds `total` rows: the target gets its share of them but never fewer than its own
    rows (so `concat` adds the other rows once, `uniform` repeats the target up to an equal share, `target_only`
    repeats it up to `total`). Without `total` the target's rows appear once each and the other groups get the
    rows that keep the shares (`concat`: every other row once; `target_only`: none).
    """
    column, target, strategy = config.mix_by, config.target_domain, config.mixing_strategy
    groups_of = train.with_format("arrow")[:].column(column).to_pylist()
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, group in enumerate(groups_of):
        rows_of[group].append(row)
    if target not in rows_of:
        raise ValueError(f"mix_additive keeps every row of target {column} {target!r}, but there are none; "
                         f"{column}s: {sorted(rows_of)}")
    order = [target] + sorted(group for group in rows_of if group != target)
    sizes = {group: len(rows_of[group]) for group in order}
    weights = mixing_weights(sizes, strategy, temperature=config.mixing_temperature,
                             ratios=config.mixing_ratios, target=target)
    own, other_share = sizes[target], 1.0 - weights[target]
    if strategy == "concat":
        target_count = own if total is None else max(own, total - (len(train) - own))
        other_total = len(train) - own if total is None else total - target_count
    elif total is None:
        target_count = own
        other_total = sum(sizes.values()) - own if weights[target] == 0 else round(own * other_share / weights[target])
    else:
        target_count = min(total, max(own, round(total * weights[target])))
        other_total = total - target_count
    others = {group: weights[group] / other_share for group in order[1:]} if other_share > 0 else {}
    requested = {target: target_count, **(apportion(others, other_total) if others else {})}
    requested.update({group: 0 for group in order if group not in requested})
    rng = np.random.default_rng(seed)
    picked = []
    for group in order:
        picked += _sample(rows_of[group], requested[group], rng)
    report = MixReport(
        strategy=strategy, mix_by=column, target=target, budget=sum(requested.values()), seed=seed,
        temperature=config.mixing_temperature if strategy == "temperature" else None,
        few_shot_k=config.few_shot_k, target_rows_before_few_shot=None, groups=[])
    return _shuffled_mix(train, picked, groups_of, sizes, weights, requested, report, rng)


def _shuffled_mix(train: Dataset, picked: list[int], groups_of: list[str], sizes: dict[str, int],
                  weights: dict[str, float], requested: dict[str, int], report: MixReport,
                  rng: np.random.Generator) -> tuple[Dataset, MixReport]:
    """The picked rows in a seeded order (repeats with unique ids) and `report` completed with what was achieved."""
    picked = [picked[i] for i in rng.permutation(len(picked))]
    all_ids = train.with_format("arrow")[:].column("id").to_pylist()
    mixed = take_rows(train, picked, f"mix {report.strategy} {report.seed}",
                      id=_unique_ids([all_ids[row] for row in picked]))
    achieved = Counter(groups_of[row] for row in picked)
    total = len(picked)
    report.groups = [
        GroupMix(group=group, is_target=group == report.target, available=sizes[group],
                 requested_share=weights[group], requested_rows=requested[group], achieved_rows=achieved[group],
                 achieved_share=achieved[group] / total if total else 0.0,
                 upsampled=achieved[group] > sizes[group])
        for group in sizes
    ]
    table = mixed.with_format("arrow")[:]
    report.counts = {name: dict(Counter(table.column(name).to_pylist())) for name in ("source", "domain")}
    report.counts["label"] = dict(Counter(_label_name(train, label) for label in table.column("label").to_pylist()))
    return mixed, report
