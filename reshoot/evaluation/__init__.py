"""``reshoot eval``: how close a run comes to the truth.

:mod:`.evaluate` runs the evaluation and writes the report (``run_eval``); :mod:`.scores` holds the scoring it and
the benchmarks share (pose errors, localising a view, region scores).
"""
