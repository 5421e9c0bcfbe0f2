"""otherdata: fine-tune BERT-family text classifiers with other data, and measure when it helps.

Import the step modules directly (``from otherdata_utils import data, clean, mix``); nothing heavy runs at import.
"""
__version__ = "0.1.0"
