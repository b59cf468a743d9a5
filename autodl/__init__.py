"""The AutoDL protocol.

Reading and writing the AutoDL dataset format (TFRecords of ``SequenceExample`` plus a
text-format ``metadata.textproto``), converting raw data into it (numpy arrays, image
folders with ``labels.csv``, tensorflow-datasets, built-in offline sources), the
time-budgeted ingestion loop with a wall or simulated clock, and the challenge's scoring
(NAUC, ALC, learning curves).

Reference: Liu et al., "Winning solutions and post-challenge analyses of the ChaLearn
AutoDL challenge 2019", TPAMI 2021; the organizers' starting kit and ``autodl-contrib``.
"""
