"""Synthetic data sets the book generates itself (no downloads).

``interpbook.datasets.brackets``: strings of ``(`` and ``)`` labelled balanced / unbalanced,
with the tokenisation the ``brackets-classifier`` model reads.
``interpbook.datasets.ioi``: indirect-object-identification prompts, their word-level
vocabulary and tokenizer, and the train / held-out split of name pairs the ``ioi-toy`` model
was trained with.
"""
