"""Monitoring: a dated text stream scored in batches by a saved classifier, one class's share per period with its
Wilson interval, and periods flagged above a control limit set on a baseline period (a p-chart).

Takes the config's `MonitorSpec` (stream, columns, class, periods, baseline) and a model folder; hands on a
`MonitorResult` and writes the scored texts, the period table and the figure into the run folder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from . import data, metrics, pipeline, plots
from .config import Config, MonitorSpec
from . import files
from .io import atomic_write_text
from .predictor import Predictor
from .runs import is_quiet, run_folder

# A p-chart's upper limit: the baseline share plus 3 standard errors at the period's own volume (Shewhart); a
# period above it would occur by chance about once in 740 periods if the rate had not changed.
SIGMAS = 3.0
PERIOD_NAMES = {"D": "day", "W": "week", "M": "month"}


class MonitorError(ValueError):
    """A stream that cannot be monitored; the message names the file, row, column or parameter."""


@dataclass
class MonitorResult:
    scored: pd.DataFrame  # one row per text: time, text, prediction, score (and label where the stream has one)
    periods: pd.DataFrame  # one row per period: n, count, share, interval, baseline, upper limit, flagged
    baseline_share: float
    flagged: list[str]  # the periods after the baseline above the limit
    figure: Figure
    folder: Path


def read_stream(spec: MonitorSpec, data_dir: Optional[Path]) -> pd.DataFrame:
    """Columns time (timestamps), text and, for a named source, label (its class name): one row per text, in time
    order, from `spec.start` on. A file's time that does not parse is an error naming its row; a named source's
    undated rows are left out and counted (``frame.attrs["undated"]``)."""
    path = Path(spec.stream).expanduser()
    if path.is_file():
        try:
            records = files.read_records(path, files.file_format(path) or "csv")
        except files.FileReadError as error:
            raise MonitorError(f"monitoring.stream: {error}") from None
        for name, parameter in ((spec.text_column, "text_column"), (spec.time_column, "time_column")):
            if name not in records.columns:
                raise MonitorError(f"{path}: no column {name!r} (monitoring.{parameter}); columns present: "
                                   f"{list(records.columns)}")
        frame = pd.DataFrame({"time": records.columns[spec.time_column], "text": records.columns[spec.text_column]})
        where = [f"{path}, {records.unit} {records.where(row)[2]}" for row in range(len(frame))]
    elif "/" in spec.stream or path.suffix:
        raise MonitorError(f"monitoring.stream: {path}: file not found (a file path, or a named source with dates "
                           "such as blitzer_mds:kitchen)")
    else:
        loaded = data.load_source(spec.stream, data_dir)
        rows = pd.concat([split.to_pandas() for split in loaded.values()], ignore_index=True)
        undated = rows["date"].isna()
        rows = rows[~undated].reset_index(drop=True)  # a labelled data set's few undated rows belong to no period
        names = loaded["train"].features["label"].names
        frame = pd.DataFrame({"time": rows["date"], "text": rows["text"],
                              "label": [names[label] for label in rows["label"]]})
        where = [f"{spec.stream}, id {row_id}" for row_id in rows["id"]]
        frame.attrs["undated"] = int(undated.sum())
    times = pd.to_datetime(frame["time"], errors="coerce")
    bad = times.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise MonitorError(f"{where[row]}: time {frame['time'].iloc[row]!r} is not a date "
                           f"(monitoring.time_column = {spec.time_column!r}; {int(bad.sum())} such rows)")
    frame["time"] = times
    if spec.start is not None:
        frame = frame[frame["time"] >= pd.Timestamp(spec.start)]
    if frame.empty:
        raise MonitorError(f"monitoring.stream {spec.stream}: no texts from {spec.start} on")
    ordered = frame.sort_values("time", kind="stable").reset_index(drop=True)
    ordered.attrs = frame.attrs
    return ordered


def score_stream(predictor: Predictor, stream: pd.DataFrame, batch_size: int, *, quiet: bool = True) -> pd.DataFrame:
    """The stream with each text's predicted class and its probability, scored in batches in time order."""
    predictions = []
    for start in tqdm(range(0, len(stream), batch_size), desc="scoring", disable=quiet):
        predictions += predictor.predict(stream["text"].iloc[start:start + batch_size].tolist())
    return stream.assign(prediction=[p["label"] for p in predictions], score=[p["score"] for p in predictions])


def period_shares(scored: pd.DataFrame, label: str, frequency: str) -> pd.DataFrame:
    """Per period: texts, those predicted `label`, their share with its 95% Wilson interval, and the share of
    `label` among the stream's own labels where it has them (how far the model's picture is from the truth)."""
    periods = scored["time"].dt.to_period(frequency)
    rows = []
    for period, group in scored.groupby(periods, sort=True):
        count = int((group["prediction"] == label).sum())
        low, high = metrics.wilson_interval(count, len(group))
        row = {"period": str(period), "start": period.start_time.date().isoformat(), "n": len(group),
               "count": count, "share": count / len(group), "ci_low": low, "ci_high": high}
        if "label" in group:
            row["true_share"] = float((group["label"] == label).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def control_limits(periods: pd.DataFrame, baseline_end: str) -> tuple[pd.DataFrame, float]:
    """The baseline share (every text of the periods starting on or before `baseline_end`) and each period's upper
    limit at its own volume; periods after the baseline above their limit are flagged."""
    baseline = periods["start"] <= baseline_end
    if not baseline.any() or baseline.all():
        raise MonitorError(f"monitoring.baseline_end {baseline_end}: the stream's periods run from "
                           f"{periods['start'].iloc[0]} to {periods['start'].iloc[-1]}; the baseline must hold some "
                           "of them and leave some to watch")
    rate = periods.loc[baseline, "count"].sum() / periods.loc[baseline, "n"].sum()
    upper = [min(1.0, rate + SIGMAS * math.sqrt(rate * (1 - rate) / n)) for n in periods["n"]]
    limits = periods.assign(baseline=baseline, upper_limit=upper)
    return limits.assign(flagged=~limits["baseline"] & (limits["share"] > limits["upper_limit"])), float(rate)


def monitor(config: Config) -> MonitorResult:
    """Score `config.monitoring`'s stream with its model (default: this run's), per period; write the scored texts
    (monitoring/scores.csv), the period table (monitoring/periods.csv), figures/monitoring.png and metrics.json
    "monitoring"."""
    spec = config.monitoring
    if spec is None:
        raise MonitorError("monitoring is not set in the params: give its stream, label and baseline_end")
    paths = run_folder(config)
    model_dir = Path(spec.model) if spec.model else paths.model
    if spec.model is None and not (model_dir / "config.json").is_file():
        pipeline.load_trained_model(config)  # this run's model, trained if 03_finetune has not made it yet
    predictor = Predictor.load(model_dir, batch_size=min(spec.batch_size, 128))
    if spec.label not in predictor.labels:
        raise MonitorError(f"monitoring.label {spec.label!r} is not a class of {model_dir}; its classes are "
                           f"{predictor.labels}")
    stream = read_stream(spec, config.resolved_data_dir())
    scored = score_stream(predictor, stream, spec.batch_size, quiet=is_quiet(config))
    periods, rate = control_limits(period_shares(scored, spec.label, spec.frequency), spec.baseline_end)
    folder = paths.monitoring
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "scores.csv", scored.to_csv(index=False))
    atomic_write_text(folder / "periods.csv", periods.to_csv(index=False))
    flagged = periods.loc[periods["flagged"], "period"].tolist()
    figure = plots.plot_monitoring(periods, spec.label, PERIOD_NAMES[spec.frequency], rate,
                                   path=paths.figure("monitoring"))
    watched = periods[~periods["baseline"]]
    pipeline.update_metrics(config, "monitoring", {
        "stream": spec.stream, "model": str(model_dir), "label": spec.label, "frequency": spec.frequency,
        "texts": len(scored), "undated_left_out": stream.attrs.get("undated", 0), "periods": len(periods), "baseline_end": spec.baseline_end,
        "baseline_share": rate, "sigmas": SIGMAS, "watched_periods": len(watched), "flagged": flagged,
        **({"accuracy": float((scored["prediction"] == scored["label"]).mean())} if "label" in scored else {})})
    return MonitorResult(scored, periods, rate, flagged, figure, folder)
