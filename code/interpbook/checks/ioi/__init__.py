"""Checks of the chapter "Indirect object identification: finding a circuit"
(``book/chapters/ioi/``), one module per section page."""
