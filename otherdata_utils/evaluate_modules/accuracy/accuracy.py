"""Accuracy, as the Hub's `evaluate-metric/accuracy`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
import datasets
from sklearn.metrics import accuracy_score

import evaluate

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among the examples processed:
Accuracy = (TP + TN) / (TP + TN + FP + FN).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground truth labels.
    normalize (`bool`): If False, return the number of correctly classified examples instead of the fraction.
        Defaults to True.
    sample_weight (`list` of `float`): Sample weights. Defaults to None.

Returns:
    accuracy (`float`): between 0 and 1, or the count of correct examples when `normalize=False`.

Examples:
    >>> accuracy_metric = evaluate.load("otherdata_utils/evaluate_modules/accuracy")
    >>> accuracy_metric.compute(references=[0, 1, 2, 0, 1, 2], predictions=[0, 1, 1, 2, 1, 0])
    {'accuracy': 0.5}
"""

_CITATION = """
@article{scikit-learn,
    title={Scikit-learn: Machine Learning in {P}ython},
    author={Pedregosa, F. and others},
    journal={Journal of Machine Learning Research},
    volume={12},
    pages={2825--2830},
    year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        # The "multilabel" configuration takes one 0/1 vector per example, as on the Hub.
        value = datasets.Value("int32")
        kind = datasets.Sequence(value) if self.config_name == "multilabel" else value
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": kind, "references": kind}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
