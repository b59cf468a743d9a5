"""The benchmarks behind ``autodl-meta benchmark ...`` whose results go to ``docs/benchmarks.md``.

Library code only (the measurements and the report writers); the commands in
:mod:`autodl_meta` parse the arguments, draw the progress bars and print.

- :mod:`~pipeline.benchmarks.speed`: ``benchmark io`` (reading/writing AutoDL datasets) and
  ``benchmark finetune`` (training speed, first prediction, memory);
- :mod:`~pipeline.benchmarks.clock_agreement`: ``benchmark clocks`` (each clock against the wall clock);
- :mod:`~pipeline.benchmarks.config_grid`: ``benchmark grid`` (is there anything to select?);
- :mod:`~pipeline.benchmarks.budget_fidelity`: ``benchmark fidelity`` (do low budgets rank as the full one?);
- :mod:`~pipeline.benchmarks.budget_adherence` and its child :mod:`~pipeline.benchmarks.slow_io`:
  ``benchmark budget`` (is the budget kept under CPU load and slow reads?);
- :mod:`~pipeline.benchmarks.bohb_overhead`: ``benchmark bohb`` (the offline machinery's cost);
- :mod:`~pipeline.benchmarks.selection_cost`: ``benchmark selector`` (embedding and selecting at test time);
- :mod:`~pipeline.benchmarks.report_doc`: appending a report to ``docs/benchmarks.md``.
"""
