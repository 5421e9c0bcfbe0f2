"""Precision, as the Hub's `evaluate-metric/precision`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
from sklearn.metrics import precision_score

import evaluate
# The module, not its classes: evaluate.load takes the first Metric class in a script's namespace.
from otherdata_utils.evaluate_modules import _sklearn

_DESCRIPTION = """
Precision is the fraction of predicted positives that are truly positive: TP / (TP + FP).
"""

_KWARGS_DESCRIPTION = _sklearn.averaged_kwargs_description("precision")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(_sklearn.AveragedScore):
    description = _DESCRIPTION
    kwargs_description = _KWARGS_DESCRIPTION
    scorer = staticmethod(precision_score)
    score_name = "precision"
