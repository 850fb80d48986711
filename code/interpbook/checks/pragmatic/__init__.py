"""Checks of the chapter "Probes, steering and SAEs: pragmatic interpretability"
(``book/chapters/pragmatic/``), one module per section page."""
