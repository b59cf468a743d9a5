"""BOHB over the fine-tuning configuration space, offline, one run per training dataset.

Built on hpbandster (Falkner et al., "BOHB: Robust and Efficient Hyperparameter
Optimization at Scale", ICML 2018): a Pyro4 nameserver, one master, N workers, budgets,
simulated-clock timing tables and resumable runs, all behind one function.

How a run searches (the settings of ``portfolio build`` and ``build-default``)
-------------------------------------------------------------------------------
*Its own seed.* A build's run on dataset ``D`` samples with
:func:`offline_bohb.run.derive_seed` of the build's seed and ``D``'s name (SHA-256: the
same on every machine and in every process), recorded in ``run.json`` as ``bohb_seed`` and
``bohb_seed_from``. Until December 2026 every run of a build drew the same configurations.
The evaluations keep the build's seed (``seed``), the cost matrix's, so that a full-budget
trial here is the same evaluation as the cost-matrix cell of that configuration and dataset.

*The dataset's space.* :func:`finetune.config.space_for` builds ``configs/space/finetune.yaml``
for the dataset's shape (recorded as ``run.json``'s ``space.data``): 20 dimensions for
images of 1 or 3 channels, 22 for clips (``frames_per_clip``, ``temporal``), 21 for other
channel counts (``channel_adapter``). It is conditional: the nine training hyperparameters
are active only with ``finetune: true``, ``pretrained`` only for networks that have
pretrained weights (never for ``scratch_cnn``), ``probe_examples`` only for the embedding
probe, ``train_layers`` only for a pretrained network that is fine-tuned, ``probe_share``
only for probes followed by fine-tuning; ``probes: none`` with ``finetune: false`` is
forbidden. hpbandster's BOHB samples only the active values and imputes the inactive ones
in its model; a sampled configuration is completed for the learner with the defaults
(:func:`offline_bohb.run.config_decoder`).

*Warm start.* Iteration 0 of every run evaluates the grid's 21 configurations
(:mod:`finetune.grid`, ``baseline:default`` among them, adapted to the dataset's space) at
the full budget; BOHB's brackets follow as iterations 1, 2, ... The incumbent is the best
trial at the largest budget, so no run can end weaker than a known fixed configuration.
They run as an iteration of their own rather than as hpbandster's ``previous_result``
(which only feeds the model, with results from elsewhere): here they are evaluated on the
dataset by the run's workers, recorded, resumed and fed to the model like any trial.

*The model.* BOHB samples from a density ratio fitted, at the largest budget that has
enough results, on the good and the bad results. hpbandster 0.7.4 fits it only when its
two disjoint sets each hold more points than the space has dimensions (statsmodels'
density refuses fewer), i.e. after ``2 (d + 1)`` results at one budget: 38 to 44 here,
while a run of the default build holds 27 results at the full budget and 18 at 1/9 after
its warm start and 4 brackets. Without a change no sample of any run would be
model-based (none was, in the runs of December 2026). :func:`offline_bohb.hpb.make_sampler`
follows the paper instead (a model once ``N_min + 2`` results exist; good: the best
``max(N_min, q N)``, bad: the worst ``max(N_min, N - N_good)``) with a density that
accepts fewer points than dimensions (:class:`offline_bohb.hpb.ProductKDE`, the same
product-kernel estimator), so that the warm start's 21 results make a model before the
first bracket samples. The settings (:data:`offline_bohb.run.DEFAULT_BOHB`):

- ``min_points_in_model = 7``: the good density is fitted on the best 7 results (a third
  of the warm start), the bad one on the others (14 after the warm start). With
  ``top_n_percent = 15`` (the default) the good set stays 7 until 47 results at the
  model's budget, more than a run of the default build has. hpbandster's ``d + 1`` (19 to
  22) would make the good set 19 of the 21 warm-start results and the two densities
  nearly equal: a model in name only. 7 also lets a run without a warm start fit a model
  at the lowest budget from its first bracket's 9 results.
- ``random_fraction = 0.2`` (hpbandster: 1/3): one sample in five is drawn from the prior,
  which keeps exploring (the paper's convergence argument needs a constant fraction, not a
  particular one); the warm start already spreads 21 configurations over the space, and a
  run has only 24 samples to spend. Once the model exists a sample is model-based with
  probability 0.8: a run's 15 samples after its first bracket are less than half
  model-based with probability 0.004 (binomial).
- ``num_samples = 64`` (the default): the density ratio is maximised over 64 draws from
  the good density widened by ``bandwidth_factor = 3``. The early model rests on 21 to 30
  results in 20 to 22 dimensions; maximising it harder would make the picks less diverse,
  not better. A pick costs a few milliseconds either way.
- 3 brackets (``portfolio.build.DEFAULT_ITERATIONS``; 4 before the default build was sized
  to 12 hours, 2 before that) after a warm start of the grid's core (``grid-core``: 7
  configurations, :data:`finetune.grid.CORE`). The model needs ``N_min + 2 = 9`` results at
  one budget: the first bracket's 9 at 1/9 give it, so the 6 samples after the first bracket
  (3 at 1/3, 3 at the full budget) are model-based with probability 0.8 each: a run falls
  below half with probability 0.017 (binomial), about one run in 60.

Measured with the synthetic objective (``portfolio.build.rehearse_search``; the figures of
each setting are in ``docs/benchmarks.md``); ``tests/test_offline_bohb/test_search.py``
measures it on two datasets.

*What it costs.* Per dataset, the warm start is 7 full-budget trials (one of them a
probes-only configuration of a few seconds) and 3 brackets are 5 full-budget, 6
third-budget and 9 ninth-budget trials. The warm start's trials are evaluations of (grid
configuration, dataset, the build's seed) at the full budget: the cells of the pool's first
seed (:mod:`portfolio.pool`), copied there rather than computed twice.
"""
