"""What the notebooks use: the exercises and their checker (:mod:`.exercises`), the interactive explorers
(:mod:`.explorers`), the teaching pictures (:mod:`.pictures`), source and code display (:mod:`.show`),
the race kernel of the dispatch notebook (:mod:`.race`), and the generated folders: the student edition
(:mod:`.student`) and the static book (:mod:`.book`), written safely by :mod:`.generated`.

Imports the core, :mod:`moe_lab.inspection` and :mod:`moe_lab.measure`; nothing outside it imports it.
"""
