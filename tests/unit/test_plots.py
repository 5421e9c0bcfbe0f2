"""Figures: each plot function returns a Figure, writes a complete PNG atomically, and draws what it claims."""
import matplotlib

matplotlib.use("Agg")  # tests never open windows, display or not

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from otherdata_utils import metrics, plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {"step": 10, "epoch": 0.5, "loss": 0.69},
    {"step": 20, "epoch": 1.0, "loss": 0.52},
    {"step": 20, "epoch": 1.0, "eval_loss": 0.55, "eval_accuracy": 0.74, "eval_macro_f1": 0.73},
    {"step": 30, "epoch": 1.5, "loss": 0.40},
    {"step": 40, "epoch": 2.0, "loss": 0.33},
    {"step": 40, "epoch": 2.0, "eval_loss": 0.47, "eval_accuracy": 0.80, "eval_macro_f1": 0.79},
]
PER_DOMAIN = metrics.per_domain_metrics(
    [0, 1, 0, 1, 0, 1, 0, 1, 0, 1], [0, 1, 0, 1, 0, 1, 0, 0, 1, 1], ["a"] * 4 + ["b"] * 4 + ["c"] * 2, ["neg", "pos"]
)
TRANSFER = pd.DataFrame(
    [[0.91, 0.72, 0.65], [0.70, 0.88, 0.61], [0.66, 0.63, 0.85]],
    index=["books", "dvd", "kitchen"], columns=["books", "dvd", "kitchen"],
)
FEW_SHOT = pd.DataFrame({
    "k": [8, 32, 128, 8, 32, 128],
    "strategy": ["in-domain"] * 3 + ["mixed"] * 3,
    "mean": [0.60, 0.72, 0.83, 0.70, 0.78, 0.85],
    "ci_low": [0.55, 0.69, 0.81, 0.66, 0.75, None],
    "ci_high": [0.65, 0.75, 0.85, 0.74, 0.81, None],
})
DOSES = pd.DataFrame({
    "k_label": ["8"] * 5 + ["32"] * 5,
    "series": ["target_only", "concat", "concat", "other_only", "other_only"] * 2,
    "dose": [0, 256, 1400, 256, 1400] * 2,
    "dose_label": ["0", "256", "all", "256", "all"] * 2,
    "mean": [0.60, 0.70, 0.74, 0.55, 0.62, 0.72, 0.75, 0.77, 0.55, 0.62],
    "ci_low": [0.55, 0.66, 0.70, 0.50, 0.58, 0.69, 0.72, 0.74, 0.50, 0.58],
    "ci_high": [0.65, 0.74, 0.78, 0.60, 0.66, 0.75, 0.78, 0.80, 0.60, 0.66],
})
MIX = pd.DataFrame({
    "group": ["imdb", "amazon", "yelp"],
    "achieved_rows": [500, 300, 200],
    "requested_share": [0.5, 0.3, None],
})
QUALITY = pd.DataFrame({
    "x": [0.0, 0.1, 0.2, 0.0, 0.1, 0.2],
    "series": ["clean"] * 3 + ["filtered"] * 3,
    "mean": [0.85, 0.80, 0.72, 0.85, 0.83, 0.80],
    "ci_low": [0.83, 0.77, 0.68, 0.83, 0.81, 0.77],
    "ci_high": [0.87, 0.83, 0.76, 0.87, 0.85, 0.83],
})

CALIBRATION = metrics.calibration_bins([0.95, 0.9, 0.6, 0.55, 0.7, 0.98], [True, True, False, True, True, True])
BY_LENGTH = metrics.accuracy_by_length([5, 3, 9, 12, 7, 7, 20, 1], [True, True, False, True, True, False, False, True],
                                       max_length=10)

CASES = {
    "training_curves": lambda path: plots.plot_training_curves(HISTORY, path=path),
    "confusion_matrix": lambda path: plots.plot_confusion_matrix([[40, 10], [5, 45]], ["neg", "pos"], path=path),
    "confusion_matrix_normalized": lambda path: plots.plot_confusion_matrix(
        [[40, 10], [5, 45]], ["neg", "pos"], path=path, normalize=True),
    "per_domain": lambda path: plots.plot_per_domain(PER_DOMAIN, path=path),
    "transfer_heatmap": lambda path: plots.plot_transfer_heatmap(TRANSFER, path=path),
    "few_shot_curves": lambda path: plots.plot_few_shot_curves(FEW_SHOT, path=path),
    "mix": lambda path: plots.plot_mix(MIX, path=path),
    "dose_curves": lambda path: plots.plot_dose_curves(DOSES, path=path),
    "quality_curve": lambda path: plots.plot_quality_curve(QUALITY, path=path, xlabel="label noise rate"),
    "confusion_matrices": lambda path: plots.plot_confusion_matrices([[40, 10], [5, 45]], ["neg", "pos"], path=path),
    "reliability": lambda path: plots.plot_reliability(CALIBRATION, path=path),
    "accuracy_by_length": lambda path: plots.plot_accuracy_by_length(BY_LENGTH, path=path),
}


def _texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts]


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_returns_figure_and_writes_a_complete_png_without_leftovers(tmp_path, name):
    path = tmp_path / "figures" / f"{name}.png"
    fig = CASES[name](path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    # the PNG is the returned figure, at 120 dpi: its IHDR chunk holds width and height
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == tuple(round(inches * 120) for inches in fig.get_size_inches())
    # The IEND chunk closes every complete PNG; a half-written file lacks it.
    assert data[-12:-4] == b"\x00\x00\x00\x00IEND"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_plot_without_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plots.plot_per_domain(PER_DOMAIN)
    assert sorted(tick.get_text() for tick in fig.axes[0].get_yticklabels()) == ["a", "b", "c"]
    assert list(tmp_path.iterdir()) == []


def test_figures_drawn_outside_jupyter_are_not_kept_open_by_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_confusion_matrix([[1, 0], [0, 1]], ["neg", "pos"])
    assert plt.get_fignums() == before


def test_training_curves_show_loss_and_evaluation_panels_against_step():
    fig = plots.plot_training_curves(HISTORY)
    loss_ax, score_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["training loss", "evaluation loss"]
    assert [line.get_label() for line in score_ax.lines] == ["accuracy", "macro-F1"]
    assert list(loss_ax.lines[0].get_xdata()) == [10, 20, 30, 40]
    assert list(score_ax.lines[0].get_ydata()) == [0.74, 0.80]


def test_training_curves_without_evaluations_say_so():
    fig = plots.plot_training_curves([row for row in HISTORY if "loss" in row])
    assert "nothing logged" in _texts(fig)


def test_normalized_confusion_matrix_shows_shares_of_each_true_class():
    fig = plots.plot_confusion_matrix([[40, 10], [5, 45]], ["neg", "pos"], normalize=True)
    assert _texts(fig) == ["0.80", "0.20", "0.10", "0.90"]
    counts = plots.plot_confusion_matrix([[40, 10], [5, 45]], ["neg", "pos"])
    assert _texts(counts) == ["40", "10", "5", "45"]


def test_confusion_matrix_rejects_a_shape_that_does_not_match_the_names():
    with pytest.raises(ValueError, match="expected 3x3"):
        plots.plot_confusion_matrix([[1, 0], [0, 1]], ["neg", "neutral", "pos"])


def test_per_domain_highlights_only_the_worst_domain():
    fig = plots.plot_per_domain(PER_DOMAIN)
    ax = fig.axes[0]
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    colors = {label: bar.get_facecolor() for label, bar in zip(labels, ax.patches)}
    assert colors["c"] == to_rgba("tab:red")
    assert colors["a"] == colors["b"] == to_rgba("tab:blue")


def test_transfer_heatmap_annotates_every_cell_with_its_accuracy():
    fig = plots.plot_transfer_heatmap(TRANSFER)
    assert _texts(fig) == [f"{value:.3f}" for value in TRANSFER.to_numpy().ravel()]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["books", "dvd", "kitchen"]


def test_few_shot_curves_use_a_log_k_axis_and_one_line_per_strategy():
    fig = plots.plot_few_shot_curves(FEW_SHOT)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert sorted(line.get_label() for line in ax.lines) == ["in-domain", "mixed"]


def test_a_series_at_one_k_shows_its_interval_as_an_error_bar():
    setfit_at_8 = pd.DataFrame({"k": [8], "strategy": ["setfit"], "mean": [0.73], "ci_low": [0.70], "ci_high": [0.76]})
    ax = plots.plot_few_shot_curves(pd.concat([FEW_SHOT, setfit_at_8], ignore_index=True)).axes[0]
    bars = [container for container in ax.containers if isinstance(container, ErrorbarContainer)]
    assert len(bars) == 1  # the two-line series keep their bands
    (segment,), = [collection.get_segments() for collection in bars[0].lines[2]]
    assert segment[:, 1].tolist() == pytest.approx([0.70, 0.76])


def test_few_shot_curves_name_the_every_target_row_point_on_the_axis():
    every_row = pd.DataFrame({"k": [348, 348], "strategy": ["in-domain", "mixed"], "mean": [0.9, 0.91],
                              "ci_low": [0.85, 0.86], "ci_high": [0.95, 0.96]})
    frame = pd.concat([FEW_SHOT.assign(k_label=FEW_SHOT["k"].astype(str)), every_row.assign(k_label="all")])
    ax = plots.plot_few_shot_curves(frame).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "32", "128", "all (348)"]


def test_few_shot_curves_keep_k_zero_on_a_symlog_axis():
    with_zero = pd.concat([FEW_SHOT, pd.DataFrame({"k": [0], "strategy": ["mixed"], "mean": [0.5],
                                                   "ci_low": [0.45], "ci_high": [0.55]})], ignore_index=True)
    ax = plots.plot_few_shot_curves(with_zero).axes[0]
    assert ax.get_xscale() == "symlog"
    mixed = next(line for line in ax.lines if line.get_label() == "mixed")
    assert list(mixed.get_xdata()) == [0, 8, 32, 128]


def test_mix_bars_are_achieved_shares_and_markers_the_requested_ones():
    fig = plots.plot_mix(MIX)
    ax = fig.axes[0]
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], [0.5, 0.3, 0.2])
    requested = ax.collections[0].get_offsets()
    # yelp asked for no share, so it has no marker.
    assert len(requested) == 2
    np.testing.assert_allclose(np.asarray(requested)[:, 1], [0.5, 0.3])


def test_quality_curve_needs_its_columns():
    with pytest.raises(ValueError, match="missing \\['series'\\]"):
        plots.plot_quality_curve(QUALITY.drop(columns="series"))


def test_confusion_matrices_show_counts_beside_shares_of_each_true_class():
    fig = plots.plot_confusion_matrices([[40, 10], [5, 45]], ["neg", "pos"])
    counts_ax, shares_ax = fig.axes[:2]
    assert [t.get_text() for t in counts_ax.texts] == ["40", "10", "5", "45"]
    assert [t.get_text() for t in shares_ax.texts] == ["0.80", "0.20", "0.10", "0.90"]
    assert (counts_ax.get_title(), shares_ax.get_title()) == ("Counts", "Share of each true class")


def test_reliability_diagram_names_the_ece_and_draws_a_bar_per_filled_bin():
    fig = plots.plot_reliability(CALIBRATION)
    reliability, counts = fig.axes[:2]
    assert reliability.get_title() == f"Reliability: ECE {CALIBRATION['ece']:.3f} (15 bins)"
    filled = [b for b in CALIBRATION["bins"] if b["n"]]
    accuracy_bars = reliability.containers[0]
    np.testing.assert_allclose([bar.get_height() for bar in accuracy_bars], [b["accuracy"] for b in filled])
    assert len(counts.patches) == 15
    assert sum(bar.get_height() for bar in counts.patches) == CALIBRATION["n"]


def test_accuracy_by_length_labels_each_quartile_with_its_tokens_n_and_truncation():
    ax = plots.plot_accuracy_by_length(BY_LENGTH).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "Q1\n1–3 tokens\nn = 2\n0% truncated"
    assert labels[3] == "Q4\n12–20 tokens\nn = 2\n100% truncated"
    assert [t.get_text() for t in ax.texts] == ["1.000", "1.000", "0.000", "0.500"]


# --- the results book's forest plot ----------------------------------------------------------------------------------

COMPARISONS = {
    "study_a": {"few_shot_mixing": "k_label,arm,reference,delta,ci_low,ci_high,verdict\n"
                                   "8,concat,target_only,0.12,0.09,0.15,\"helps (+0.120, p_adj<0.001)\"\n"
                                   "all,concat,target_only,-0.01,-0.03,0.01,cannot tell: differences up to 0.03\n"},
    "study_b": {"agreement": "arm,reference,delta,ci_low,ci_high,verdict\n"
                             "≥66%,≥100%,-0.096,-0.133,-0.059,\"hurts (-0.096, p_adj=0.006)\"\n",
                "noise": "arm,reference,delta,ci_low,ci_high,verdict,metric\n"
                         "noise 30%,target_only,-0.2,,,cannot tell,in-scope accuracy\n"},
}


@pytest.fixture
def results_book(tmp_path):
    """Two published study folders (one with two study tables) and a single run without any comparison."""
    for folder, studies in COMPARISONS.items():
        for study, table in studies.items():
            (tmp_path / folder / "studies" / study).mkdir(parents=True)
            (tmp_path / folder / "studies" / study / "comparisons.csv").write_text(table, encoding="utf-8")
            (tmp_path / folder / "studies" / study / "summary.csv").write_text("arm,mean\nx,0.5\n")
    (tmp_path / "imdb_offline" / "figures").mkdir(parents=True)
    (tmp_path / "README.md").write_text("# Results\n")
    return tmp_path


def test_forest_rows_are_the_published_comparisons_labelled_arm_vs_reference_in_folder_order(results_book):
    rows = plots.forest_rows(results_book)
    assert rows[["group", "label", "verdict"]].values.tolist() == [
        ["study_a", "k 8 · concat vs target_only", "helps"],
        ["study_a", "k all · concat vs target_only", "cannot tell"],
        ["study_b · agreement", "≥66% vs ≥100%", "hurts"],
        ["study_b · noise", "noise 30% vs target_only (in-scope accuracy)", "cannot tell"],
    ]
    assert rows["delta"].tolist() == [0.12, -0.01, -0.096, -0.2]
    assert rows["ci_low"].isna().tolist() == [False, False, False, True]


def test_forest_plot_draws_one_point_per_comparison_under_its_group_with_a_zero_line(results_book):
    rows = plots.forest_rows(results_book)
    fig = plots.plot_forest(rows)
    ax = fig.axes[0]
    bars = [container for container in ax.containers if isinstance(container, ErrorbarContainer)]
    points = sorted(y for container in bars for y in container.lines[0].get_ydata())
    # groups head their rows: heading 0, rows 1-2, heading 3, row 4, heading 5, row 6
    assert points == [1, 2, 4, 6]
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == ["study_a", "k 8 · concat vs target_only", "k all · concat vs target_only",
                      "study_b · agreement", "≥66% vs ≥100%", "study_b · noise",
                      "noise 30% vs target_only (in-scope accuracy)"]
    bold = [tick.get_text() for tick in ax.get_yticklabels() if tick.get_fontweight() == "bold"]
    assert bold == ["study_a", "study_b · agreement", "study_b · noise"]
    # the right-hand column repeats each Δ with its interval; a row without one shows Δ alone
    right = [tick.get_text() for tick in ax.child_axes[0].get_yticklabels()]
    assert right == ["", "+0.120 [+0.090, +0.150]", "-0.010 [-0.030, +0.010]", "", "-0.096 [-0.133, -0.059]", "",
                     "-0.200"]
    vertical = [line for line in ax.lines if len(set(line.get_xdata())) == 1 and list(line.get_ydata()) == [0, 1]]
    assert [list(line.get_xdata()) for line in vertical] == [[0, 0]]  # one line across the axes, at Δ = 0
    colors = {container.get_label(): to_rgba(container.lines[0].get_color()) for container in bars}
    assert colors == {"helps": to_rgba("tab:green"), "hurts": to_rgba("tab:red"),
                      "cannot tell": to_rgba("tab:gray")}


def test_forest_plot_of_a_book_without_comparisons_is_refused_and_a_bad_table_named(tmp_path):
    (tmp_path / "imdb_offline").mkdir()
    assert plots.forest_rows(tmp_path).empty
    with pytest.raises(ValueError, match="at least one comparison"):
        plots.plot_forest(plots.forest_rows(tmp_path))
    table = tmp_path / "study_c" / "studies" / "x" / "comparisons.csv"
    table.parent.mkdir(parents=True)
    table.write_text("arm,reference,mean_arm\nx,y,0.5\n")
    with pytest.raises(ValueError, match=rf"{table}.*missing \['delta', 'ci_low', 'ci_high'\]"):
        plots.forest_rows(tmp_path)


def test_dose_curves_draw_a_panel_per_k_with_target_only_as_a_level_line_and_the_floor_dashed():
    fig = plots.plot_dose_curves(DOSES)
    assert [ax.get_title() for ax in fig.axes] == ["k = 8", "k = 32"]
    for ax, level in zip(fig.axes, (0.60, 0.72)):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines["target_only (dose 0)"].get_ydata()) == [level, level]  # a horizontal reference line
        assert lines["other_only"].get_linestyle() == "--" and lines["concat"].get_linestyle() == "-"
        assert list(lines["concat"].get_xdata()) == [256, 1400]
        assert [tick.get_text() for tick in ax.get_xticklabels()] == ["256", "all (1400)"]


def test_dose_curves_refuse_a_dose_of_zero_outside_the_reference():
    bad = DOSES.assign(dose=DOSES["dose"].where(DOSES["series"] != "concat", 0))
    with pytest.raises(ValueError, match=r"doses ≤ 0 outside the reference 'target_only': \['concat'\]"):
        plots.plot_dose_curves(bad)
