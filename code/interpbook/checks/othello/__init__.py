"""Checks of the chapter "OthelloGPT: a world model found with linear probes"
(``book/chapters/othello/``), one module per section page."""
