"""Solutions of the chapters' exercises, importable by later pages and chapters.

``interpbook.solutions.<chapter>.<section>`` holds the solutions of the page
``book/chapters/<chapter>/<NN>-<section>.md``. The modules are *generated* from the pages by
``interpbook-build export-solutions``: the definitions of the cells tagged ``solution``
(markers removed, each after a line naming its page and exercise), an ``__all__``, and only the
imports those definitions use. The page stays the one source; a test fails when a module is
out of date.
"""
