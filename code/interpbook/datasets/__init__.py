"""Synthetic data sets the book generates itself (no downloads).

``interpbook.datasets.brackets``: strings of ``(`` and ``)`` labelled balanced / unbalanced,
with the tokenisation the ``brackets-classifier`` model reads.
"""
