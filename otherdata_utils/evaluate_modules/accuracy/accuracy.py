"""Accuracy, as the Hub's `evaluate-metric/accuracy`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
from sklearn.metrics import accuracy_score

import evaluate
# The module, not its classes: evaluate.load takes the first Metric class in a script's namespace.
from otherdata_utils.evaluate_modules import _sklearn

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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(_sklearn.SklearnMetric):
    description = _DESCRIPTION
    kwargs_description = _KWARGS_DESCRIPTION
    scorer = staticmethod(accuracy_score)

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score)}
