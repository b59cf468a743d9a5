"""Selectors: which known dataset is a new one most like?

Every selector is a scikit-learn classifier over meta-features whose classes are the
training datasets (nearest centroid, k-means + vote, MLP + vote, MLP + precalc, VAE
latent + two-sample t-test, descriptor kNN, random / single-best / oracle baselines),
with leave-one-dataset-out evaluation and comparison reports.
"""
