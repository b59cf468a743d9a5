"""Selectors: which portfolio configuration should a new dataset get?

The seed design's selectors name the most similar training dataset (scikit-learn classifiers
over meta-features whose classes are the training datasets: nearest centroid, k-means + vote,
MLP + vote, MLP + precalc, VAE latent + two-sample t-test, descriptor kNN; transferability
measures such as LogME, LEEP, OTDD and Task2Vec), whose best member is then trained; the member
selectors predict every portfolio member's ALC from the meta-features and name a member
(regression, pairwise, ranking; a rule on image size and training size). Random, single-best
and oracle baselines, leave-one-dataset-out evaluation over the members with a nested
single-best fallback, and the comparison report (:mod:`selector.report`); look selectors up by
name in :mod:`selector.registry`.
"""
