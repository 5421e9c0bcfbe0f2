"""`publish --restat`: a published folder's comparisons re-rendered from its cells with today's statistics (two-level
intervals, Holm families, MDE at α/m, TOST), with no model and no data: a small folder written here as the first
publish wrote it."""
import json

import numpy as np
import pandas as pd
import pytest

from otherdata_utils import republish, stats
from otherdata_utils.publish import publish_command
from otherdata_utils.studies.engine import compare_arms, correct_text
from otherdata_utils.studies.tables import comparison_cells, comparison_sentence, interval_text

DESIGN = {"scientific": {"arm": ["target_only", "concat", "probe"]}, "fixed": {"learning_rate": 0.0001},
          "nuisance": "not tuned per arm", "seeds": [1, 2, 3, 4, 5], "split_seeds": [1, 2, 3, 4, 5], "replicates": 5}
FIRST_STATISTICS = (" Δ: paired over (split seed, seed) against `target_only` (arm minus reference), 95% t interval "
                    "over replicates; p_adj: Holm over every comparison of the table; MDE: the smallest true Δ the "
                    "paired t test finds with 80% power at α = 0.05, from the observed spread of Δ.")


def _cells(rows: int = 300) -> pd.DataFrame:
    """5 replicates on the same test rows: concat right on 9 more rows than target-only, the probe on 15 more."""
    rng = np.random.default_rng(2)
    truth = rng.random(rows) < 0.7
    records = []
    for split in range(1, 6):
        base = truth ^ (rng.random(rows) < 0.1)
        for arm, gain in (("target_only", 0), ("concat", 9 + split % 2), ("probe", 15)):
            correct = base.copy()
            correct[np.flatnonzero(~correct)[:gain]] = True
            records.append({"split_seed": split, "seed": 1, "arm": arm, "accuracy": correct.mean(),
                            "n_test": rows, "test_rows": "abc", "correct": correct_text(correct)})
    return pd.DataFrame(records)


def _first_published(folder, cells: pd.DataFrame) -> pd.DataFrame:
    """The folder as the first publish wrote it: replicate-only comparisons, one Holm family, the MDE at 0.05."""
    first = stats.compare_paired(cells, "target_only", "arm", "accuracy", ["split_seed", "seed"], anchors=())
    first["mde"] = [stats.minimum_detectable_effect(0.01, 5)] * len(first)
    first = first[["arm", "reference", "n_replicates", "mean_reference", "mean_arm", "delta", "ci_low", "ci_high",
                   "interval_covers", "p", "p_holm", "mde", "verdict"]]
    study = folder / "studies" / "toy"
    study.mkdir(parents=True)
    cells.drop(columns="correct").to_csv(study / "cells.csv", index=False)
    cells[["arm", "split_seed", "seed", "test_rows", "correct"]].to_csv(study / "correct.csv", index=False)
    first.to_csv(study / "comparisons.csv", index=False)
    header = "| arm | Δ vs reference [95% CI] | p_adj (Holm) | MDE | verdict |\n|---|---:|---:|---:|---:|"
    rows = "\n".join(f"| {row.arm} | " + " | ".join(republish.first_cells(row)) + " |" for _, row in first.iterrows())
    table = "*Scientific:* arm = toy. Means: 95% Student-t interval over replicates." + FIRST_STATISTICS + \
        f"\n\n{header}\n{rows}"
    entry = {**DESIGN, "table_markdown": table, "reading": comparison_sentence(first),
             "comparisons": json.loads(first.to_json(orient="records"))}
    (folder / "metrics.json").write_text(json.dumps({"studies": {"toy": entry}}))
    (folder / "report.md").write_text(f"# Run `toy`\n\n## Study: toy\n\n{table}\n\n{entry['reading']}\n")
    (folder / "README.md").write_text("# Results of run `toy`\n\nPublished from the run folder `runs/toy`; made by "
                                      "`python -m otherdata_utils publish`:\n")
    return first


def test_restat_rewrites_comparisons_report_and_readme_from_the_cells(tmp_path):
    folder = tmp_path / "study_toy"
    first = _first_published(folder, _cells())
    done = republish.restat(folder)
    assert done.covers == {"toy": ["replicates + test rows"]}
    table = pd.read_csv(folder / "studies" / "toy" / "comparisons.csv").set_index("arm")
    assert set(table["interval_covers"]) == {"replicates + test rows"}
    assert table.loc["probe", "family"] == "anchors" and table.loc["concat", "family"] == "other data"
    # each arm alone in its family now: no Holm adjustment left, the MDE at the full alpha
    assert table.loc["concat", "p_holm"] == pytest.approx(table.loc["concat", "p"])
    assert table.loc["concat", "delta"] == pytest.approx(first.set_index("arm").loc["concat", "delta"])
    report = (folder / "report.md").read_text()
    assert "| p_adj (Holm) |" not in report and "| p_adj (Holm, per family) |" in report
    assert "intervals cover replicates + test rows" in report and "95% t interval over replicates" not in report
    assert "TOST: equivalence not shown (90% [" in report
    assert interval_text(table.reset_index().iloc[0]) in report  # the new Δ interval, in the table and reading
    assert " | ".join(republish.first_cells(first.iloc[0])) + " |" not in report  # no first-published cell left
    metrics = json.loads((folder / "metrics.json").read_text())["studies"]["toy"]
    assert metrics["statistics"]["interval_covers"] == ["replicates + test rows"]
    assert metrics["comparisons"][0]["family"] == "other data"
    readme = (folder / "README.md").read_text().split("\n")
    assert readme[2].startswith(republish.RESTAT_LINE) and "toy: intervals cover replicates + test rows" in readme[2]


def test_restat_twice_changes_nothing(tmp_path):
    folder = tmp_path / "study_toy"
    _first_published(folder, _cells())
    republish.restat(folder)
    once = {path.name: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    republish.restat(folder)
    assert {path.name: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == once


def test_restat_refuses_cells_that_are_not_the_ones_published(tmp_path):
    folder = tmp_path / "study_toy"
    cells = _cells()
    _first_published(folder, cells)
    correct = pd.read_csv(folder / "studies" / "toy" / "correct.csv", dtype={"correct": str})
    flipped = correct.loc[1, "correct"]
    correct.loc[1, "correct"] = ("1" if flipped[0] == "0" else "0") + flipped[1:]
    cells_table = pd.read_csv(folder / "studies" / "toy" / "cells.csv")
    cells_table.loc[1, "accuracy"] = correct.loc[1, "correct"].count("1") / len(flipped)
    cells_table.to_csv(folder / "studies" / "toy" / "cells.csv", index=False)
    correct.to_csv(folder / "studies" / "toy" / "correct.csv", index=False)
    with pytest.raises(republish.RestatError, match="differs from the published one"):
        republish.restat(folder)


def test_restat_command_reports_a_folder_publish_did_not_write(tmp_path, capsys):
    assert publish_command(["--restat", str(tmp_path)]) == 2
    assert "no metrics.json and report.md" in capsys.readouterr().err


def test_a_routed_run_gets_its_balanced_score_beside_the_routing_line():
    routed = {"in_scope_accuracy": 0.8, "out_of_scope_recall": 0.9, "in_scope_rows": 450, "out_of_scope_rows": 1000,
              "out_of_scope_precision": 0.95, "handover_share": 0.6, "threshold": 0.9}
    report = "# Run\n\nrouting: **in-scope accuracy 0.8000** (old line)\n\nmore"
    restated = republish.restated_routing_lines(report, [routed])
    assert "**balanced score 0.8500**" in restated and "(old line)" not in restated and restated.endswith("more")
    with pytest.raises(republish.RestatError, match="1 routing line"):
        republish.restated_routing_lines(report, [routed, routed])


def test_compare_arms_bootstraps_rows_only_where_the_correctness_is_the_measured_rows():
    cells = _cells()
    assert set(compare_arms(cells, "target_only")["interval_covers"]) == {"replicates + test rows"}
    # correctness over all test rows while accuracy is a headline group's (its mean is not the accuracy)
    headline = cells.assign(accuracy=cells["accuracy"] - 0.05)
    assert set(compare_arms(headline, "target_only")["interval_covers"]) == {"replicates"}
    assert set(compare_arms(cells.drop(columns="correct"), "target_only")["interval_covers"]) == {"replicates"}
    # a third of the rows measured, with the same accuracy by chance: still not the measured rows
    assert set(compare_arms(cells.assign(n_test=100), "target_only")["interval_covers"]) == {"replicates"}


def test_mark_puts_one_superseded_line_under_the_title_and_replaces_it_when_marked_again(tmp_path):
    folder = tmp_path / "study_toy"
    _first_published(folder, _cells())
    republish.mark(folder, "Superseded by ../a/: first reason.")
    republish.mark(folder, "Reading note: a note.")
    republish.mark(folder, "Superseded by ../b/: second reason.")
    for name in ("README.md", "report.md"):
        lines = (folder / name).read_text().split("\n")
        assert lines[2] == "Superseded by ../b/: second reason." and lines[4] == "Reading note: a note."
        assert not any("first reason" in line for line in lines)
    republish.restat(folder)  # restat's own line goes below the marks
    readme = (folder / "README.md").read_text().split("\n")
    assert readme[2].startswith("Superseded by") and readme[6].startswith(republish.RESTAT_LINE)
    with pytest.raises(republish.RestatError, match="a mark starts with one of"):
        republish.mark(folder, "Note: something")


def test_restat_replaces_the_cells_an_earlier_restat_wrote(tmp_path):
    cells = _cells()
    earlier = stats.compare_paired(cells, "target_only", "arm", "accuracy", ["split_seed", "seed"])  # replicates
    later = compare_arms(cells, "target_only")  # replicates and test rows
    rows = "\n".join("| " + " | ".join(comparison_cells(row)) + " |" for _, row in earlier.iterrows())
    entry = {"table_markdown": "*Scientific:* toy." + FIRST_STATISTICS + "\n\n" + rows}
    table = republish.restated_table(entry, earlier, later, tmp_path)
    for (_, before), (_, after) in zip(earlier.iterrows(), later.iterrows()):
        assert " | ".join(comparison_cells(before)) not in table
        assert " | ".join(comparison_cells(after)) + " |" in table
    assert "intervals cover replicates + test rows" in table
