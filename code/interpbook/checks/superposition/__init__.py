"""Checks of the chapter "Superposition and sparse autoencoders" (``book/chapters/superposition/``),
one module per section page."""
