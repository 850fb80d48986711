"""Solutions of the chapters' exercises, importable by later pages and chapters.

The modules in this folder are *generated* from the chapter pages by
``interpbook export-solutions``: the imports of cells tagged ``export`` and the definitions
(functions, classes) of cells tagged ``solution``, markers removed. The chapter page stays the
one source; a test fails when a generated module is out of date.
"""
