"""What a pretrained network sees in a dataset.

Embeddings of samples (penultimate layer of a pretrained CNN), batch statistics
("precalc": mean, median, std, var, skewness, kurtosis after trimming p-quantiles), and
simple descriptors (size, number of classes, channels, resolution).
"""
