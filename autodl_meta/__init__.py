"""The ``autodl-meta`` command line: one sub-command per stage, a thin layer over the library."""

__version__ = "0.1.0"
