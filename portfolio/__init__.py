"""The meta-dataset: training-dataset collections, their incumbents, and the cost matrix.

The cost matrix holds the ALC of every incumbent on every training dataset, evaluated in
parallel with Dask; incumbents + cost matrix = the portfolio, shipped as JSON + CSV.
"""
