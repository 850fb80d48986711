"""Checks of the chapter "TransformerLens and induction heads" (``book/chapters/induction/``),
one module per section page."""
