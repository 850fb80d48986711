"""Build tooling for the book: the Sphinx extension (exercises, solution toggles, Colab badges,
the open-problems catalog), the notebook generator and the solution exporter.

Nothing here is installed by a learner: the learner's package is ``interpbook`` (``code/``).
Only ``interpbook``'s files are part of the execution-cache fingerprint, so editing anything in
this package re-executes no page.
"""
