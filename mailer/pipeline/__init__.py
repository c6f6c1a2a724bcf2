"""The daily cycle, one stage a module: fetch, plan, render, send; ``cycle`` runs them in turn.

No stage imports a later one: ``plan`` knows nothing of rendering, ``render`` nothing of
sending.
"""
