"""The pipeline layer: orchestration above :mod:`portfolio`, :mod:`selector` and :mod:`submission`.

What runs many evaluations of several layers side by side and judges them lives here
(today: the held-out benchmark, :mod:`pipeline.heldout`). Every import goes down from
here; no lower layer imports this package. The CLI (:mod:`autodl_meta`) is a thin layer
above it.
"""
