"""Recall, as the Hub's `evaluate-metric/recall`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
from sklearn.metrics import recall_score

import evaluate
# The module, not its classes: evaluate.load takes the first Metric class in a script's namespace.
from otherdata_utils.evaluate_modules import _sklearn

_DESCRIPTION = """
Recall is the fraction of actual positives that were predicted positive: TP / (TP + FN).
"""

_KWARGS_DESCRIPTION = _sklearn.averaged_kwargs_description("recall")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Recall(_sklearn.AveragedScore):
    description = _DESCRIPTION
    kwargs_description = _KWARGS_DESCRIPTION
    scorer = staticmethod(recall_score)
    score_name = "recall"
