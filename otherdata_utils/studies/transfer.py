"""The transfer matrix: a model trained on each domain alone, tested on every domain, over seeds.

Hands on the study's `StudyResult`: per (model, test domain) cells, the summary per train × test pair, and as extra
tables the accuracy matrix, the transfer loss and its intervals; a heatmap and a reading.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd
from datasets import Dataset
from pydantic import Field

from .. import plots, runs, stats
from ..config import Config
from ..study_registry import StudyParams, register_study, study_params
from .engine import (Cell, StudyPlan, StudyResult, finish, plan_cells, prepared_data, replicates, run_cells,
                     study_design, summarize)
from .reuse import PlannedCells, with_reuse
from .sampling import column, domain_rows, seeded_cap, take


class TransferParams(StudyParams):
    """`study.transfer`: the domains trained on and tested on ([] = every training domain)."""

    domains: list[str] = Field(default_factory=list)


def transfer_params(config: Config) -> TransferParams:
    return study_params(config, "transfer", TransferParams)



# Blitzer et al. (2007): electronics and kitchen transfer well to each other; books and dvd transfer poorly to
# (and from) electronics and kitchen.
KNOWN_CLOSE_PAIRS = {("electronics", "kitchen_&_housewares"), ("kitchen_&_housewares", "electronics")}
KNOWN_FAR_PAIRS = {(a, b) for a in ("books", "dvd") for b in ("electronics", "kitchen_&_housewares")}
KNOWN_FAR_PAIRS |= {(b, a) for a, b in KNOWN_FAR_PAIRS}


def transfer_matrix(config: Config, domains: Optional[list[str]] = None) -> StudyResult:
    """Train on each domain alone (same budget for every domain, each seed) and test on every domain.

    The result's cells have one row per (split seed, seed, train domain, test domain); its summary the accuracy's
    mean, std, 95% interval and mean transfer loss per (train, test) pair; its extra tables "matrix" (mean accuracy,
    a row per train domain, a column per test domain), "loss" (in-domain accuracy of the test domain minus this
    pair's, laid out alike) and "loss_summary" (the per-replicate loss's mean and 95% interval per pair). There are
    no arm comparisons: the reading tests close against far pairs.

    `domains` (else `study.transfer.domains`, else every training domain) are trained on and tested on; a model's
    own domain's validation rows drive checkpoint choice (when `eval_strategy` evaluates). The budget is the
    smallest domain's training rows, capped by `max_train_samples`, so no domain looks better for having more rows.
    """
    planned = planned_cells(config, domains)
    domains = list(dict.fromkeys(cell.arm for cell in planned.cells))  # each cell's arm is its training domain
    budget = len(planned.cells[0].train)  # every domain's cells fill the same budget
    per_model = run_cells(config, planned.cells, planned.test, planned.label_names, desc="transfer")
    # One row per (model, test domain): the headline accuracy columns give way to each domain's.
    long = per_model.drop(columns=["accuracy", "macro_f1"]).melt(
        id_vars=["split_seed", "seed", "arm", "n_train", "train_seconds"],
        value_vars=[f"accuracy_{d}" for d in domains],
        var_name="test_domain", value_name="accuracy").rename(columns={"arm": "train_domain"})
    long["test_domain"] = long["test_domain"].str.removeprefix("accuracy_")
    long = long[["split_seed", "seed", "train_domain", "test_domain", "n_train", "accuracy", "train_seconds"]]

    matrix = long.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="mean")
    spread = long.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="std")
    matrix, spread = matrix.loc[domains, domains], spread.reindex(index=domains, columns=domains)
    in_domain = pd.Series({d: matrix.loc[d, d] for d in domains})
    loss = matrix.rsub(in_domain, axis="columns")  # loss[s, t] = in_domain[t] - matrix[s, t]

    # Loss per seed (same seed's in-domain model), so its interval carries the seed noise of both cells.
    own = long[long["train_domain"] == long["test_domain"]].set_index(
        ["split_seed", "seed", "test_domain"])["accuracy"]
    long["loss"] = [own[(split, seed, target)] - accuracy for split, seed, target, accuracy in
                    zip(long["split_seed"], long["seed"], long["test_domain"], long["accuracy"])]
    summary = summarize(long, ["train_domain", "test_domain"], also=["loss"])
    loss_summary = summarize(long, ["train_domain", "test_domain"], metric="loss")
    figure = plots.plot_transfer_heatmap(matrix, path=runs.run_folder(config).figure("transfer_matrix"))
    design = study_design(config, {"train domain": domains, "test domain": domains},
                          "the model's initialisation, batch order and which rows fill the budget",
                          {"rows per domain": budget})
    table = (f"Accuracy (mean ± sd over seeds; diagonal = in-domain), {budget} training rows per domain:\n\n"
             + _matrix_markdown(_accuracy_texts(matrix, spread))
             + "\n\nTransfer loss (in-domain accuracy of the test domain minus this cell; mean and 95% interval "
               "over seeds):\n\n" + _matrix_markdown(_loss_texts(loss_summary, matrix)))
    by_train = {"matrix": matrix, "loss": loss}
    return finish(config, "transfer_matrix", long, summary, pd.DataFrame(),
                  design, table, _transfer_reading(matrix, spread, loss, long, budget), figure,
                  extra={"loss_summary": loss_summary,
                         **{name: frame.rename_axis(index="train_domain", columns=None).reset_index()
                            for name, frame in by_train.items()}},
                  # metrics.json keeps matrix and loss as {test domain: {train domain: value}}, as it always has
                  record={"budget_per_domain": budget,
                          **{name: frame.round(4).to_dict() for name, frame in by_train.items()}})


def _accuracy_texts(matrix: pd.DataFrame, spread: pd.DataFrame) -> pd.DataFrame:
    """Each pair's mean accuracy with its spread over seeds, as table texts."""
    return pd.DataFrame([[f"{matrix.loc[s, t]:.3f}" + (f" ± {spread.loc[s, t]:.3f}" if pd.notna(spread.loc[s, t])
                                                       else "") for t in matrix.columns] for s in matrix.index],
                        index=matrix.index, columns=matrix.columns)


def _loss_texts(loss_summary: pd.DataFrame, matrix: pd.DataFrame) -> pd.DataFrame:
    """Each pair's mean transfer loss with its 95% interval, as table texts laid out like `matrix`."""
    texts = loss_summary.assign(text=[
        f"{row.mean:+.3f}" + (f" [{row.ci_low:+.2f}, {row.ci_high:+.2f}]" if pd.notna(row.ci_low) else "")
        for row in loss_summary.itertuples()]).pivot(index="train_domain", columns="test_domain", values="text")
    return texts.reindex(index=matrix.index, columns=matrix.columns)


def _transfer_reading(matrix: pd.DataFrame, spread: pd.DataFrame, loss: pd.DataFrame, cells: pd.DataFrame,
                      budget: int) -> str:
    domains = list(matrix.index)
    replicates = cells[["split_seed", "seed"]].drop_duplicates()
    # seed-only designs replicate over seeds alone, each seed drawing its rows (split_seed repeats the seed)
    seed_only = (replicates["split_seed"] == replicates["seed"]).all()
    pairs = ", ".join(f"{split}×{seed}" for split, seed in replicates.itertuples(index=False))
    replicate_text = (f"seeds {', '.join(map(str, sorted(replicates['seed'])))}" if seed_only else
                      f"split seed × seed pairs {pairs}")
    off = [(s, t) for s in domains for t in domains if s != t]
    if not off:
        return f"One domain only ({domains[0]}): there is no transfer to measure."
    in_mean = sum(matrix.loc[d, d] for d in domains) / len(domains)
    cross_mean = sum(matrix.loc[s, t] for s, t in off) / len(off)
    best = min(off, key=lambda pair: loss.loc[pair])
    worst = max(off, key=lambda pair: loss.loc[pair])
    noise = spread.stack().dropna()
    lines = [
        f"Each model trained on {budget} rows of one domain, {len(replicates)} replicate(s) ({replicate_text}).",
        f"Mean in-domain accuracy {in_mean:.3f}; mean cross-domain accuracy {cross_mean:.3f} "
        f"(transfer costs {in_mean - cross_mean:+.3f} on average).",
        f"Best transfer: {best[0]} → {best[1]} (loss {loss.loc[best]:+.3f}); worst: {worst[0]} → {worst[1]} "
        f"(loss {loss.loc[worst]:+.3f}).",
    ]
    if len(noise):
        lines.append(f"The median seed-to-seed standard deviation of a cell is {float(noise.median()):.3f}: "
                     "single cells that differ by less than about twice that are inside the seed noise.")
    else:
        lines.append("With one seed there is no estimate of seed noise: treat differences under a few points as "
                     "unresolved.")
    close = [pair for pair in off if pair in KNOWN_CLOSE_PAIRS]
    far = [pair for pair in off if pair in KNOWN_FAR_PAIRS]
    if close and far:
        test = close_far_test(cells, close, far)
        mde = stats.minimum_detectable_effect(test.sd_diff, test.n)
        verdict = stats.verdict(test.delta, (test.ci_low, test.ci_high), test.p, mde, reason=test.note,
                                directions=("the far pairs lose more", "the close pairs lose more"))
        if not (test.p < 0.05):  # nan (no spread, one replicate) reads as not shown
            agrees = "cannot tell whether this reproduces"
        else:
            agrees = "agrees with" if test.delta > 0 else "runs against"
        lines.append(f"Blitzer et al. (2007) found electronics ↔ kitchen transfer well and books/dvd ↔ "
                     f"electronics/kitchen poorly: here the close pairs lose {test.mean_a:+.3f} and the far pairs "
                     f"{test.mean_b:+.3f} on average; paired over {test.n} replicate(s) (split seed, seed), far "
                     f"minus close is {test.delta:+.3f} (95% CI {test.ci_low:+.3f} to {test.ci_high:+.3f}, covering "
                     f"replicates; MDE {mde:.3f}): {verdict}. So this {agrees} that pattern.")
    return "\n\n".join(lines)


def close_far_test(cells: pd.DataFrame, close: list[tuple[str, str]], far: list[tuple[str, str]]) -> stats.PairedT:
    """Far pairs' mean transfer loss against close pairs', paired per replicate (split seed, seed): the delta is far
    minus close, positive where the far pairs lose more, as Blitzer et al. found."""
    keys = [name for name in ("split_seed", "seed") if name in cells.columns]

    def per_replicate(pairs: list[tuple[str, str]]) -> pd.Series:
        chosen = cells[[(s, t) in pairs for s, t in zip(cells["train_domain"], cells["test_domain"])]]
        return chosen.groupby(keys)["loss"].mean()

    both = pd.concat([per_replicate(close).rename("close"), per_replicate(far).rename("far")], axis=1).dropna()
    return stats.paired_t(both["close"], both["far"])


def _matrix_markdown(texts: pd.DataFrame) -> str:
    """A train × test table of ready-made cell texts, the diagonal (in-domain) in bold."""
    lines = ["| train ↓ / test → | " + " | ".join(texts.columns) + " |", "|---|" + "---:|" * len(texts.columns)]
    for source in texts.index:
        cells = [f"**{texts.loc[source, target]}**" if source == target else texts.loc[source, target]
                 for target in texts.columns]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def transfer_domains(config: Config, train: Dataset, domains: Optional[list[str]] = None) -> list[str]:
    """The domains trained and tested on: `domains`, else `study.transfer.domains`, else every training domain
    (sorted); each checked to be a domain of the training rows."""
    available = sorted(set(column(train, "domain")))
    domains = domains or transfer_params(config).domains or available
    missing = sorted(set(domains) - set(available))
    if missing:
        raise ValueError(f"transfer_matrix: domains {missing} are not in the training data (have {available})")
    return domains


def planned_cells(config: Config, domains: Optional[list[str]] = None) -> PlannedCells:
    """Per replicate, a cell per domain (`transfer_domains`) trained on that domain's rows alone, cut to the budget
    (the smallest domain's rows, capped by `max_train_samples`), its own validation rows; scored on the test rows of
    every domain."""
    prepared, names = prepared_data(config)
    domains = transfer_domains(config, prepared["train"], domains)
    train_by_domain = {d: domain_rows(prepared["train"], d) for d in domains}
    validation_by_domain = {d: domain_rows(prepared["validation"], d) for d in domains}
    test = take(prepared["test"], [row for row, value in enumerate(column(prepared["test"], "domain"))
                                   if value in domains], f"domains {domains}")
    budget = min(len(rows) for rows in train_by_domain.values())
    if config.max_train_samples:
        budget = min(budget, config.max_train_samples)
    cells = [Cell(arm=source, seed=seed, train=seeded_cap(train_by_domain[source], budget, split),
                  validation=validation_by_domain[source], split_seed=split)
             for split, seed in replicates(config) for source in domains]
    return PlannedCells(cells, test, names)


def plan(config: Config) -> StudyPlan:
    """Per replicate: one model per training domain (`transfer_domains`), each scored on every domain's test rows
    (a cells-table row per test domain); where the run folder holds stored cells, how many it reuses
    (`with_reuse`)."""
    domains = transfer_domains(config, prepared_data(config)[0]["train"])
    return with_reuse(plan_cells("transfer", domains, config, {"fine-tuned": len(domains)},
                                 rows_per_cell=len(domains)), config, planned_cells)


register_study("transfer", TransferParams, uses_split_seeds=True, plan=plan)
