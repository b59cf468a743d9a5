"""What a pretrained network sees in a dataset.

Embeddings of samples (penultimate layer of a pretrained CNN), batch statistics
("precalc": mean, median, std, var, skewness, kurtosis after trimming p-quantiles), and
simple descriptors (size, number of classes, channels, resolution).

- :mod:`metafeatures.features`: :class:`~metafeatures.features.DatasetFeatures` (one
  dataset's embeddings, labels, descriptors and card; ``<name>.npz`` + ``<name>.json``) and
  :class:`~metafeatures.features.Query` (a batch of a new dataset, as a selector sees it).
- :mod:`metafeatures.embeddings`: :class:`~metafeatures.embeddings.EmbeddingSpec`,
  :class:`~metafeatures.embeddings.Embedder` and
  :func:`~metafeatures.embeddings.extract_features` (one AutoDL dataset; its test labels
  are never read).
- :mod:`metafeatures.extract`: :func:`~metafeatures.extract.extract_collection` (a
  collection, in parallel with Dask, cached per dataset); ``autodl-meta metafeatures
  extract`` on the command line.
- :mod:`metafeatures.precalc`: :func:`~metafeatures.precalc.precalc` and
  :func:`~metafeatures.precalc.precalc_batches` (trimmed batch statistics).
- :mod:`metafeatures.descriptors`: :func:`~metafeatures.descriptors.describe` and
  :func:`~metafeatures.descriptors.descriptor_vector` (ZAP's meta-features).
"""
