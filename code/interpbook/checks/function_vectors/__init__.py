"""Checks of the chapter "Function vectors and steering with nnsight"
(``book/chapters/function_vectors/``), one module per section page."""
