"""What the shipped metric scripts share: `evaluate.Metric` classes with the Hub scripts' inputs, keyword arguments
and outputs, whose arithmetic is scikit-learn's.

Each script in a sibling folder stays a file `evaluate.load(path)` can copy into its cache and import on its own;
it reaches this module through the installed package, as a Hub script reaches any library it imports.
"""
from typing import Callable

import datasets
import numpy as np

import evaluate

SKLEARN_CITATION = """
@article{scikit-learn,
    title={Scikit-learn: Machine Learning in {P}ython},
    author={Pedregosa, F. and others},
    journal={Journal of Machine Learning Research},
    volume={12},
    pages={2825--2830},
    year={2011}
}
"""


def averaged_kwargs_description(name: str) -> str:
    """The inputs of precision, recall and f1, which take the same averaging arguments."""
    return f"""
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
    {name} (`float`, or an array of `float` when `average=None`): between 0 and 1.

Examples:
    >>> metric = evaluate.load("otherdata_utils/evaluate_modules/{name}")
    >>> metric.compute(references=[0, 1, 0, 1, 0], predictions=[0, 0, 1, 1, 0])
    {{'{name}': 0.5}}
"""


class SklearnMetric(evaluate.Metric):
    """A metric whose description, keyword documentation and scikit-learn page are class attributes."""

    description: str
    kwargs_description: str
    scorer: Callable

    def _info(self):
        # The "multilabel" configuration takes one 0/1 vector per example, as on the Hub.
        value = datasets.Value("int32")
        kind = datasets.Sequence(value) if self.config_name == "multilabel" else value
        return evaluate.MetricInfo(
            description=self.description,
            citation=SKLEARN_CITATION,
            inputs_description=self.kwargs_description,
            features=datasets.Features({"predictions": kind, "references": kind}),
            reference_urls=[f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics."
                            f"{self.scorer.__name__}.html"],
        )


class AveragedScore(SklearnMetric):
    """Precision, recall or F1: one scikit-learn scorer, output under `score_name`."""

    score_name: str

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
        score = type(self).scorer(
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
        return {self.score_name: score if np.ndim(score) else float(score)}
