"""Timing tables: seconds per training batch and per test example, per configuration.

A timing table drives the simulated clock (:class:`autodl.clock.SimulatedClock`): an
offline evaluation advances the clock by what the table says a training step or a test
pass takes on the machine it was measured on, so that its learning curve is
reproducible and independent of the load of a shared machine.

The table is JSON::

    {"machine": "...", "device": "cpu", "created": "...", "threads": 2,
     "entries": [{"backbone": "tf_efficientnet_lite0", "batch_size": 32, "input_size": 64,
                  "train_batch_s": 0.41, "test_example_s": 0.0031}, ...]}

A lookup between measured sizes scales with the pixel count (and, for training, the
batch size) from the nearest measured entry.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingEntry:
    backbone: str
    batch_size: int
    input_size: int
    train_batch_s: float
    test_example_s: float


@dataclass
class TimingTable:
    """Measured costs of training and testing, per (backbone, batch size, input size)."""

    entries: list[TimingEntry]
    machine: str = ""
    device: str = "cpu"
    threads: int = 0
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    def lookup(self, backbone: str, batch_size: int, input_size: int) -> TimingEntry:
        """The entry for this configuration, scaled from the nearest measured one."""
        same = [e for e in self.entries if e.backbone == backbone]
        if not same:
            known = sorted({e.backbone for e in self.entries})
            raise AutoDLError(None, f"the timing table has no entry for backbone {backbone!r}; it has "
                                    f"{known}", field="backbone")
        best = min(same, key=lambda e: (abs(e.input_size - input_size), abs(e.batch_size - batch_size)))
        pixels = (input_size / best.input_size) ** 2
        return TimingEntry(backbone, batch_size, input_size,
                           train_batch_s=best.train_batch_s * pixels * batch_size / best.batch_size,
                           test_example_s=best.test_example_s * pixels)

    def to_dict(self) -> dict:
        return {"machine": self.machine, "device": self.device, "threads": self.threads,
                "created": self.created, "entries": [asdict(e) for e in self.entries]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TimingTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise AutoDLError(path, "timing table not found; make one with 'autodl-meta finetune "
                                    "timings --out FILE'") from None
        except json.JSONDecodeError as exc:
            raise AutoDLError(path, f"not JSON ({exc})") from None
        try:
            entries = [TimingEntry(**e) for e in data["entries"]]
        except (KeyError, TypeError) as exc:
            raise AutoDLError(path, f"malformed entries ({exc}); expected backbone, batch_size, "
                                    f"input_size, train_batch_s, test_example_s", field="entries") from None
        return cls(entries=entries, machine=data.get("machine", ""), device=data.get("device", "cpu"),
                   threads=data.get("threads", 0), created=data.get("created", ""))


def measure_timings(backbones: Sequence[str], batch_sizes: Sequence[int], input_sizes: Sequence[int],
                    device: str = "cpu", repeats: int = 3,
                    progress: Callable[[int], None] | None = None) -> TimingTable:
    """Measure seconds per training batch and per test example on this machine.

    Each training figure is the median of ``repeats`` SGD steps after one warm-up step
    (forward, backward, update); each test figure the median of ``repeats`` forward passes
    of a batch of 64 in eval mode without gradients, divided by 64.
    """
    import statistics

    import torch

    from autodl.machine import machine_description
    from finetune.backbones import create_backbone

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    entries = []
    for name in backbones:
        for size in input_sizes:
            net = create_backbone(name, pretrained=False, num_classes=10).to(device)
            for bs in batch_sizes:
                x = torch.randn(bs, 3, size, size, device=device)
                y = torch.randint(0, 10, (bs,), device=device)
                opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
                net.train()
                times = []
                for r in range(repeats + 1):
                    sync()
                    t = time.perf_counter()
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.cross_entropy(net(x), y).backward()
                    opt.step()
                    sync()
                    if r:
                        times.append(time.perf_counter() - t)
                train_s = statistics.median(times)
                net.eval()
                xt = torch.randn(64, 3, size, size, device=device)
                times = []
                with torch.no_grad():
                    for r in range(repeats + 1):
                        sync()
                        t = time.perf_counter()
                        net(xt)
                        sync()
                        if r:
                            times.append(time.perf_counter() - t)
                entries.append(TimingEntry(name, bs, size, train_s, statistics.median(times) / 64))
                logger.info("%s bs=%d %dpx: %.4f s/batch, %.5f s/test example", name, bs, size,
                            train_s, entries[-1].test_example_s)
                if progress is not None:
                    progress(1)
    return TimingTable(entries=entries, machine=machine_description(), device=device,
                       threads=torch.get_num_threads())
