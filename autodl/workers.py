"""Worker processes started by a command (``ProcessPoolExecutor`` with ``spawn``): how they start.

- :func:`end_with_parent`: a worker exits as soon as the process that started it is gone
  (killed), instead of running on, orphaned, with the work it was given.
- :func:`single_threaded_worker`: that, plus one thread for PyTorch and the BLAS libraries, so
  that ``n`` workers use ``n`` cores and their results do not depend on how many cores the
  machine has (a sum split over threads may be added in another order).
"""

from __future__ import annotations

import os
import threading
import time


def end_with_parent(parent: int) -> None:
    """In a worker: exit as soon as ``parent`` (the process that started it) is gone."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="end-with-parent").start()


def single_threaded_worker(parent: int) -> None:
    """In a worker: :func:`end_with_parent`, and one PyTorch and BLAS thread."""
    end_with_parent(parent)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    import torch

    torch.set_num_threads(1)
