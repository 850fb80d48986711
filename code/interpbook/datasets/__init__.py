"""Data sets the book generates or labels itself (the Shakespeare text is the one download:
see ``interpbook.zoo.text_data``).

``interpbook.datasets.brackets``: strings of ``(`` and ``)`` labelled balanced / unbalanced,
with the tokenisation the ``brackets-classifier`` model reads.
``interpbook.datasets.ioi``: indirect-object-identification prompts, their word-level
vocabulary and tokenizer, and the train / held-out split of name pairs the ``ioi-toy`` model
was trained with.
``interpbook.datasets.shakespeare_concepts``: concepts in the Shakespeare plays (stage
directions, verse and prose) labelled token by token from the text's layout, for probes.
``interpbook.datasets.othello``: the rules of 6 x 6 Othello on bitboards and seeded random
legal games, the data of ``othello-mini``.
``interpbook.datasets.icl_tasks``: six word-level tasks over one vocabulary, in-context prompts
(clean, shuffled or random labels) and the held-out pairs of ``icl-tasks``.
"""
