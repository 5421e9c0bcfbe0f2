"""F1, as the Hub's `evaluate-metric/f1`, shipped with otherdata so `evaluate.load` works offline.

Same inputs, keyword arguments and output as the Hub script; scikit-learn does the arithmetic.
"""
import datasets
import numpy as np
from sklearn.metrics import f1_score

import evaluate

_DESCRIPTION = """
F1 is the harmonic mean of precision and recall: 2 * precision * recall / (precision + recall).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted class labels.
    references (`list` of `int`): Actual class labels.
    labels (`list` of `int`): The labels to include when `average` is not `'binary'`, and their order when
        `average=None`. Labels absent from the data count as 0 in a macro average. Defaults to the sorted labels
        present in `predictions` and `references`.
    pos_label (`int`): The positive class when `average='binary'`. Defaults to 1.
    average (`str` or `None`): `'binary'` (default), `'micro'`, `'macro'`, `'weighted'`, `'samples'`
        (multilabel only), or `None` for one score per class.
    sample_weight (`list` of `float`): Sample weights. Defaults to None.
    zero_division (`0`, `1` or `'warn'`): The value when a ratio divides by zero; `'warn'` returns 0 and warns.
        Defaults to `'warn'`.

Returns:
    f1 (`float`, or an array of `float` when `average=None`): between 0 and 1.

Examples:
    >>> metric = evaluate.load("otherdata_utils/evaluate_modules/f1")
    >>> metric.compute(references=[0, 1, 0, 1, 0], predictions=[0, 0, 1, 1, 0])
    {'f1': 0.5}
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
class F1(evaluate.Metric):
    def _info(self):
        # The "multilabel" configuration takes one 0/1 vector per example, as on the Hub.
        value = datasets.Value("int32")
        kind = datasets.Sequence(value) if self.config_name == "multilabel" else value
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": kind, "references": kind}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(
        self,
        predictions,
        references,
        labels=None,
        pos_label=1,
        average="binary",
        sample_weight=None,
        zero_division="warn",
    ):
        score = f1_score(
            references,
            predictions,
            labels=labels,
            pos_label=pos_label,
            average=average,
            sample_weight=sample_weight,
            zero_division=zero_division,
        )
        # average=None keeps the per-class array, as the Hub script does. Recent scikit-learn returns a plain float
        # for a single average, which the Hub script (score.size) fails on; np.ndim handles both.
        return {"f1": score if np.ndim(score) else float(score)}
