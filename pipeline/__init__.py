"""The pipeline layer: orchestration above :mod:`portfolio`, :mod:`selector` and :mod:`submission`.

What runs the work of several layers together and judges it lives here:

- :mod:`pipeline.default_build`: the embedded default end to end (``autodl-meta portfolio
  build-default``): the portfolio, the meta-features, the selector comparison and the
  fitted selectors;
- :mod:`pipeline.heldout`: the held-out benchmark (``autodl-meta benchmark heldout``);
- :mod:`pipeline.profile`: where the submission's time goes (``autodl-meta benchmark profile``);
- :mod:`pipeline.benchmarks`: the other benchmarks behind ``autodl-meta benchmark ...``.

Every import goes down from here; no lower layer imports this package (checked by the
``import-linter`` contracts in ``pyproject.toml``, ``make lint-imports``). The CLI
(:mod:`autodl_meta`) is a thin layer above it.
"""
