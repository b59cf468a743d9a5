"""The portfolio: configurations worth selecting from, and what each scores on every training dataset.

The BOHB runs' incumbents (:mod:`portfolio.incumbents`); the shared candidate pool, its matrix
over the training datasets and seeds, and the greedy portfolio built from it
(:mod:`portfolio.pool`); the cost matrix of every member on every training dataset, evaluated
in parallel with Dask (:mod:`portfolio.cost_matrix`); the baselines' rows (:mod:`portfolio.baselines`);
and ``portfolio build``, which runs them in order (:mod:`portfolio.build`). Shipped as JSON + CSV.
The training collections themselves are built by :mod:`autodl.collection`.
"""
