"""BOHB over the fine-tuning configuration space, offline, one run per training dataset.

Built on hpbandster (Falkner et al., "BOHB: Robust and Efficient Hyperparameter
Optimization at Scale", ICML 2018): a Pyro4 nameserver, one master, N workers, budgets,
simulated-clock timing tables and resumable runs, all behind one function.
"""
