"""F1, as the Hub's `evaluate-metric/f1`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
from sklearn.metrics import f1_score

import evaluate
# The module, not its classes: evaluate.load takes the first Metric class in a script's namespace.
from otherdata_utils.evaluate_modules import _sklearn

_DESCRIPTION = """
F1 is the harmonic mean of precision and recall: 2 * precision * recall / (precision + recall).
"""

_KWARGS_DESCRIPTION = _sklearn.averaged_kwargs_description("f1")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(_sklearn.AveragedScore):
    description = _DESCRIPTION
    kwargs_description = _KWARGS_DESCRIPTION
    scorer = staticmethod(f1_score)
    score_name = "f1"
