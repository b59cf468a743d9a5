"""``finetune.embedding_cache``: features reused on the simulated clock change no result.

The cache may only skip work whose result it already holds bit for bit: the same network
state on the same input, in eval mode, without autograd. Checked on the network directly and
end to end: simulated evaluations with the cache give the same curves, histories and
predictions as without it, and do reuse features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import flat_timing, write_squares

from autodl.protocol import Protocol
from finetune import embedding_cache
from finetune.backbones import create_backbone
from finetune.config_runs import evaluate
from finetune.network import FineTuneNet

pytestmark = pytest.mark.usefixtures("torch_threads_1")

PROTO = Protocol("test", time_budget=4.0, t0=0.2)
TIMING = flat_timing(0.05, 0.0005)
PROBES = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
          "learning_rate": 0.01, "pretrained": False, "augmentation": "none",
          "probes": "raw+embedding"}


@pytest.fixture(autouse=True)
def empty_cache() -> Any:
    embedding_cache.process_cache().clear()
    yield
    embedding_cache.process_cache().clear()


def _net(seed: int = 0) -> FineTuneNet:
    torch.manual_seed(seed)
    return FineTuneNet(create_backbone("scratch_cnn", num_classes=0, pretrained=False), 3, 4).eval()


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def test_a_hit_returns_the_same_features_as_computing_them() -> None:
    net, x = _net(), _images()
    with torch.no_grad():
        plain = net.embed(x)
        with embedding_cache.caching() as cache:
            first, second = net.embed(x), net.embed(x)
            again = _net().embed(x)  # another network object with the same state: the same key
    assert torch.equal(plain, first) and torch.equal(first, second) and torch.equal(first, again)
    assert (cache.misses, cache.hits) == (1, 2)
    second.add_(1.0)  # a hit is a copy: changing it leaves the cache as it was
    with torch.no_grad(), embedding_cache.caching():
        assert torch.equal(net.embed(x), plain)


def test_another_state_input_or_mode_is_never_served_from_the_cache() -> None:
    net, x = _net(), _images()
    with torch.no_grad(), embedding_cache.caching() as cache:
        before = net.embed(x)
        assert not torch.equal(net.embed(_images(seed=1)), before)  # another input: a miss
        assert not torch.equal(_net(seed=1).embed(x), before)  # other weights: a miss
        with torch.no_grad():
            next(net.parameters()).add_(0.5)  # changed in place, as an optimizer's step does
        changed = net.embed(x)
        assert not torch.equal(changed, before)
        assert torch.equal(changed, net._features(net._prepare(x)))  # computed for the new state
    assert cache.hits == 0 and cache.misses == 4
    counts = (cache.hits, cache.misses)
    net.train()
    with torch.no_grad(), embedding_cache.caching():  # training mode: BatchNorm statistics move
        net.embed(x), net.embed(x)
    net.eval()
    with embedding_cache.caching():  # autograd on: never cached
        net.embed(x)
    with torch.no_grad():  # outside caching(): never cached
        net.embed(x), net.embed(x)
    assert (cache.hits, cache.misses) == counts


def test_the_cache_keeps_at_most_its_bytes_dropping_the_oldest() -> None:
    cache = embedding_cache.EmbeddingCache(max_bytes=3 * 4 * 10)  # three tensors of 10 float32
    for i in range(5):
        cache.put(("s", str(i)), torch.full((10,), float(i)))
    assert [k[1] for k in cache.entries] == ["2", "3", "4"] and cache.size == 120
    assert cache.get(("s", "0")) is None and torch.equal(cache.get(("s", "4")), torch.full((10,), 4.0))


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_squares(tmp_path_factory.mktemp("cache") / "squares")


def _evaluate(dataset: Path, seed: int) -> Any:
    return evaluate(PROBES, dataset, PROTO, timing=TIMING, device="cpu", seed=seed)


@pytest.mark.slow
def test_simulated_evaluations_with_the_cache_equal_those_without(squares: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cached = [_evaluate(squares, seed) for seed in (0, 0, 1)]
    hits = embedding_cache.process_cache().hits
    assert hits > 0  # the second evaluation of seed 0 reused the first one's features
    monkeypatch.setattr(embedding_cache, "usable", lambda module, x: False)
    plain = [_evaluate(squares, seed) for seed in (0, 1)]
    for with_cache, without in ((cached[0], plain[0]), (cached[1], plain[0]), (cached[2], plain[1])):
        assert with_cache.status == without.status == "ok", with_cache.error or without.error
        assert with_cache.curve == without.curve and with_cache.alc == without.alc
        assert with_cache.history == without.history


def test_the_wall_clock_never_uses_the_cache(squares: Path) -> None:
    evaluate(PROBES, squares, Protocol("test", time_budget=3.0, t0=0.3), clock="cpu", device="cpu", seed=0)
    cache = embedding_cache.process_cache()
    assert cache.hits == cache.misses == 0
