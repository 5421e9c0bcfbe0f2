"""Routing (CLINC150): the intents source, the handover threshold chosen on validation, a routing run through the
pipeline, and the served model answering an intent or `handover` over HTTP (curl, as a user would)."""
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from otherdata_utils import pipeline, report, routing
from otherdata_utils.config import Config
from otherdata_utils.data import DataError, load_source
from otherdata_utils.model_card import INFERENCE_NAME, read_inference_settings
from otherdata_utils.predictor import Predictor
from otherdata_utils.runs import run_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BANKING = ["freeze_account", "routing", "pin_change", "bill_due", "pay_bill", "account_blocked", "interest_rate",
           "min_payment", "bill_balance", "transfer", "order_checks", "balance", "spending_history", "transactions",
           "report_fraud"]


# --- the source -------------------------------------------------------------------------------------------------------

def test_clinc150_banking_with_oos_reads_its_15_intents_then_oos_in_the_published_splits(data_dir):
    dsd = load_source("clinc150:banking,oos", data_dir)
    assert dsd["train"].features["label"].names == BANKING + ["oos"]
    for split, in_scope, out_of_scope in (("train", 1500, 100), ("validation", 300, 100), ("test", 450, 1000)):
        assert Counter(dsd[split]["domain"]) == {"banking": in_scope, "oos": out_of_scope}
        labels = Counter(dsd[split]["label"])
        assert set(labels.values()) == {in_scope // 15, out_of_scope} and labels[15] == out_of_scope
    first = dsd["test"][0]
    assert first["id"].startswith("clinc150:test:") and first["split"] == "test"


def test_clinc150_ids_and_texts_do_not_depend_on_the_subsets_read(data_dir):
    alone = load_source("clinc150:banking", data_dir)
    assert alone["train"].features["label"].names == BANKING  # no oos subset: no oos class
    # subsets come in domains.json's order whatever order they are named in
    both = load_source("clinc150:credit_cards,banking", data_dir)
    assert both["train"].features["label"].names[:15] == BANKING
    banking = {row["id"]: row["text"] for row in both["test"] if row["domain"] == "banking"}
    assert banking == dict(zip(alone["test"]["id"], alone["test"]["text"]))


def test_clinc150_unknown_subset_names_the_valid_ones(data_dir):
    with pytest.raises(DataError, match="clinc150: unknown subset 'bank'. Did you mean 'banking'.*Valid subsets: "
                                        "banking, credit_cards"):
        load_source("clinc150:bank", data_dir)


# --- the threshold ----------------------------------------------------------------------------------------------------


# --- a routing run through the pipeline, served -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def routing_run(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                finetuned_through_pipeline) -> Config:
    """CLINC150 banking at CI size: the tiny random BERT on the 15 banking intents, oos rows held out of training."""
    run = Config(sources=["clinc150:banking,oos"], target_domain="banking", out_of_scope_class="oos",
                 data_dir=str(data_dir), model_name_or_path=str(tiny_model_dir),
                 cache_dir=str(tmp_path_factory.mktemp("cache")), output_dir=str(tmp_path_factory.mktemp("runs") / "r"),
                 quiet=True, max_eval_samples=160, max_test_samples=200, max_seq_length=32,
                 per_device_train_batch_size=32, num_train_epochs=3, learning_rate=2e-3, save_strategy="no",
                 eval_strategy="no")
    finetuned_through_pipeline(run)
    pipeline.evaluate_splits(run)
    return run


def test_routing_run_trains_on_in_scope_classes_and_stores_the_validation_threshold_beside_the_model(routing_run):
    paths = run_folder(routing_run)
    model_config = json.loads((paths.model / "config.json").read_text())
    assert list(model_config["id2label"].values()) == BANKING  # no head for oos: it is never trained on
    recorded = json.loads(paths.metrics.read_text())
    threshold = recorded["routing"]["threshold"]
    assert recorded["routing"]["chosen_on"] == "validation"
    # the threshold is the one the validation predictions choose (the in-scope classes' probabilities, oos last)
    validation = pipeline.metrics.load_predictions(paths.split_predictions("validation"))
    probabilities = validation[[f"prob_{name}" for name in BANKING]].to_numpy()
    labels = validation["label"].map({name: i for i, name in enumerate(BANKING + ["oos"])}).to_numpy()
    assert threshold == pytest.approx(routing.choose_threshold(probabilities, labels)[0], abs=1e-6)
    assert read_inference_settings(paths.model).handover_threshold == threshold
    test = recorded["test"]["routing"]
    assert test["in_scope_rows"] + test["out_of_scope_rows"] == recorded["test"]["n"] == 200
    predictions = pipeline.metrics.load_predictions(paths.split_predictions("test"))
    handed = predictions["prediction"] == "oos"
    assert handed.mean() == pytest.approx(test["handover_share"])
    confidence = pd.to_numeric(predictions["confidence"], errors="coerce")  # written empty where there is none
    assert confidence[handed].isna().all()  # the model has no oos probability
    assert (confidence[~handed] >= threshold).all()
    recall = (handed & (predictions["label"] == "oos")).sum() / (predictions["label"] == "oos").sum()
    assert recall == pytest.approx(test["out_of_scope_recall"])
    assert "oos" in recorded["test"]["classification_report"]


def test_the_report_shows_the_routing_and_the_saved_model_serves_with_the_threshold(routing_run):
    """What params/routing_banking.yaml leaves a user (its notebooks are the core ones params/ci.yaml runs through
    the runner in tests/e2e): a report with the routing scores and a model folder that serves with the threshold."""
    paths = run_folder(routing_run)
    report.write_report(paths.root)
    threshold = json.loads(paths.metrics.read_text())["routing"]["threshold"]
    assert "routing: **in-scope accuracy" in paths.report.read_text()
    assert Predictor.load(paths.model).metadata()["handover_threshold"] == threshold


def test_deploy_compares_pipeline_on_the_texts_the_evaluation_answered(routing_run):
    deployment = pipeline.deploy(routing_run, check_rows=40)
    assert deployment.checked > 0 and deployment.agreement == 1.0
    card = (deployment.model_dir / "README.md").read_text()
    assert "handing them over to a person" in card


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _curl(*args: str) -> dict:
    done = subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not any((Path(p) / "curl").is_file() for p in os.environ["PATH"].split(os.pathsep)),
                    reason="curl is not installed")
def test_served_model_answers_an_intent_or_handover_over_http(routing_run, tmp_path):
    """`serve` started as a user starts it, asked with curl. The tiny random model is no router, so the stored
    threshold is set between the two queries' scores: the test checks the serving path; the real model's routing
    quality is the study's (results/study_routing)."""
    model_dir = tmp_path / "model"
    subprocess.run(["cp", "-r", str(run_folder(routing_run).model), str(model_dir)], check=True)
    in_scope, out_of_scope = "how much money is in my checking account", "what is the weather like on mars"
    # in the precision `serve` runs in by default (--precision auto), so the scores compare like with like
    served_as = Predictor.load(model_dir, precision="auto")
    scores = [answer["score"] for answer in served_as.predict([in_scope, out_of_scope])]
    settings = json.loads((model_dir / INFERENCE_NAME).read_text())
    high, low = max(scores), min(scores)
    settings["handover_threshold"] = (high + low) / 2
    (model_dir / INFERENCE_NAME).write_text(json.dumps(settings))
    answered, handed = (in_scope, out_of_scope) if scores[0] > scores[1] else (out_of_scope, in_scope)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "otherdata_utils", "serve", str(model_dir), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["curl", "-sf", f"{url}/health"], capture_output=True).returncode:
            assert server.poll() is None and time.monotonic() < deadline, f"serve did not start: {server.stdout.read()}"
            time.sleep(0.2)
        assert _curl(f"{url}/metadata")["handover_threshold"] == settings["handover_threshold"]
        answers = _curl("-H", "Content-Type: application/json", "-d", json.dumps({"texts": [answered, handed]}),
                        f"{url}/predict")["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answers[0]["label"] in BANKING
    assert answers[1]["label"] == routing.HANDOVER
    assert [answer["score"] for answer in answers] == pytest.approx([high, low], abs=1e-5)


# --- the routing study at CI size -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def routing_study_result(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from otherdata_utils import studies
    run = Config(sources=["clinc150:banking,oos", {"name": "clinc150:credit_cards,home", "intermediate": True}],
                 target_domain="banking", out_of_scope_class="oos", data_dir=str(data_dir),
                 model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                 output_dir=str(tmp_path_factory.mktemp("runs") / "study"), quiet=True, max_eval_samples=120,
                 max_test_samples=150, max_seq_length=32, per_device_train_batch_size=32, learning_rate=2e-3,
                 num_train_epochs=1, eval_strategy="no", save_strategy="no", max_train_samples=150,
                 study={"routing": {"k_values": [5, None], "other_rows": 300, "anchors": ["probe"]}},
                 replicates={"seeds": [1, 2]})
    pipeline.prepare_data(run)
    return run, studies.routing_study(run)


def test_routing_study_pairs_every_arm_with_target_only_on_each_score(routing_study_result):
    run, result = routing_study_result
    cells = result.cells
    assert sorted(cells["arm"].unique()) == ["intermediate", "joint", "probe", "target_only"]
    assert len(cells) == 2 * 2 * 4  # replicates × k × (three arms + probe)
    assert cells["test_rows"].nunique() == 1  # every model scored on the same rows
    assert (cells["in_scope_rows"] + cells["out_of_scope_rows"] == 150).all()
    k5 = cells[cells["k_label"] == "5"]
    assert (k5["target_unique"] == 5 * 15).all() and (k5[k5["arm"] != "probe"]["target_rows"] == 150).all()
    assert (k5[k5["arm"] == "joint"]["n_train"] == 150 + 300).all()
    every = cells[cells["k_label"] == "all"]  # every desk query (1,500) once: more than the 150-row budget
    assert (every[every["arm"] == "target_only"]["n_train"] == 1500).all()
    assert ((cells["threshold"] >= 0) & (cells["threshold"] <= 1)).all()
    # arms with the same k-shot queries in a replicate are paired: same target rows fingerprint
    assert k5.groupby("split_seed")["target_ids"].nunique().eq(1).all()
    metrics = set(result.comparisons["metric"])
    assert metrics == {"in-scope accuracy", "out-of-scope recall", "balanced score"}
    assert len(result.comparisons) == 3 * 2 * 3  # metric × k × (arms and anchor but the reference)
    assert "**Balanced score**" in result.table_markdown and "Balanced score —" in result.reading
    assert {"delta", "ci_low", "ci_high", "p_holm", "mde", "verdict"} <= set(result.comparisons.columns)
    assert "**Out-of-scope recall**" in result.table_markdown
    assert (run_folder(run).root / "figures" / "routing_out_of_scope_recall.png").is_file()
    assert (result.folder / "cells.csv").is_file()


def test_a_routing_study_grown_by_a_k_reuses_its_cells_and_its_intermediate_encoders(routing_study_result):
    from otherdata_utils import studies
    run, result = routing_study_result
    folder = run_folder(run)
    encoders = {path.name: path.stat().st_mtime_ns for path in folder.encoders.iterdir()}
    assert len(encoders) == 2  # one per replicate, shared by both k values' intermediate cells
    grown = run.replace(study={"routing": {"k_values": [5, None, 3]}})
    plan = studies.routing.plan(grown)
    assert (plan.reused, plan.to_train) == (2 * 2 * 4 + 2, 2 * 4)  # the cells and encoders stored; k = 3's cells
    cells = studies.routing_study(grown).cells.drop(columns=["train_seconds"])
    assert {path.name: path.stat().st_mtime_ns for path in folder.encoders.iterdir()} == encoders
    before = result.cells.drop(columns=["train_seconds"])
    pd.testing.assert_frame_equal(cells[cells["k_label"] != "3"].reset_index(drop=True), before)
    assert len(cells[cells["k_label"] == "3"]) == 2 * 4
