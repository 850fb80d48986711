"""Checks of the chapter "Grokking and modular addition" (``book/chapters/grokking/``), one
module per section page."""
