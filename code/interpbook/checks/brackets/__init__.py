"""Checks of the chapter "Interpreting a balanced-brackets classifier"
(``book/chapters/brackets/``), one module per section page."""
