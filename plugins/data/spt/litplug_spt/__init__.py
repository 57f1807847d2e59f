"""litplug-spt: specialized pretraining ("The Finetuner's Fallacy", arXiv 2603.16177).

Mix a small domain dataset into pretraining from step one as a fraction ``delta`` of the training
sequences (repeating it), finetune on it with early stopping on held-out domain loss, and fit the
paper's overfitting scaling law to choose ``delta`` for a token budget.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
