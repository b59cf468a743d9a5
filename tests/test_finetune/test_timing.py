"""Timing tables (version 2): lookups, interpolation rules, refusals, files, one tiny measurement.

The lookups are checked on a hand-made table with round numbers (exact values); the one
real measurement (:func:`finetune.timing_measurement.measure_timings` on ``scratch_cnn`` and
``linear`` at 16 and 24 px, tiny workloads) is checked for its structure and for
positive costs only, never for durations.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finetune.timing import (
    AUGMENTATIONS,
    FORMATS,
    MODEL_TERMS,
    OPTIMIZERS,
    TimingError,
    TimingTable,
    data_format,
    random_features_terms,
    ridge_terms,
)
from finetune.timing_measurement import count_measurements, measure_timings

HAND: dict[str, Any] = {
    "version": 2,
    "machine": "hand-made for the tests",
    "device": "cpu",
    "threads": 1,
    "created": "2026-01-01T00:00:00",
    "command": "hand-made",
    "backbones": {
        "net": {
            # [images, seconds]: at 32 px a line with an intercept, at 64 px growing faster than the images
            "fwd_bwd": {"32": [[16, 1.5], [32, 2.5]], "64": [[16, 4.0], [32, 9.0], [64, 20.0]]},
            "optimizer_step": {"SGD": {"32": 0.1, "64": 0.1}, "Adam": {"32": 0.2, "64": 0.4}},
            "forward": {"32": 0.01, "64": 0.04},
        },
    },
    "augmentation": {"none": {"step_s": 0.0, "clip_s": 0.0, "megapixel_s": 0.0},
                     "flip": {"step_s": 0.001, "clip_s": 0.0001, "megapixel_s": 0.01}},
    "decode": {"png": {"call_s": 0.1, "example_s": 0.001, "megapixel_s": 0.5}},
    "ridge": {"call_s": 0.01, "svd_s": 1e-10, "svd_wide_s": 3e-10, "svd_cube_s": 2e-10, "matmul_s": 1e-11,
              "elementwise_s": 1e-9, "score_s": 1e-4, "score_value_s": 1e-7, "predict_call_s": 0.002},
    "random_features": {"call_s": 0.001, "matmul_s": 1e-11, "elementwise_s": 1e-9, "init_s": 1e-9,
                        "fit_s": 1e-8},
    "raw_features": {"call_s": 0.001, "value_s": 1e-9, "pool_s": 2e-9},
    "write_predictions": {"call_s": 0.0005, "value_s": 1e-6},
}


@pytest.fixture()
def table() -> TimingTable:
    return TimingTable.from_dict(copy.deepcopy(HAND))


# --- exact lookups and the interpolation rules ------------------------------------------


def test_fwd_bwd_is_piecewise_linear_in_images_at_each_measured_size(table: TimingTable):
    assert table.fwd_bwd_s("net", 16, 32) == pytest.approx(1.5)  # measured: exact
    assert table.fwd_bwd_s("net", 64, 64) == pytest.approx(20.0)
    assert table.fwd_bwd_s("net", 24, 32) == pytest.approx(2.0)  # between measured batches
    assert table.fwd_bwd_s("net", 48, 64) == pytest.approx(14.5)
    # beyond the largest batch: the last segment's slope, at least the per-image cost there
    assert table.fwd_bwd_s("net", 128, 64) == pytest.approx(20.0 + (11 / 32) * 64)
    assert table.fwd_bwd_s("net", 64, 32) == pytest.approx(2.5 + (2.5 / 32) * 32)
    # below the smallest: along the first segment, at least proportionally
    assert table.fwd_bwd_s("net", 8, 32) == pytest.approx(1.5 - (1 / 16) * 8)
    assert table.fwd_bwd_s("net", 8, 64) == pytest.approx(4.0 * 8 / 16)
    assert table.input_sizes("net") == [32, 64]


def test_noisy_points_are_made_non_decreasing():
    data = copy.deepcopy(HAND)
    data["backbones"]["net"]["fwd_bwd"]["32"] = [[32, 1.0], [16, 2.0]]
    table = TimingTable.from_dict(data)
    assert table.fwd_bwd_s("net", 24, 32) == pytest.approx(2.0)
    assert table.fwd_bwd_s("net", 32, 32) == pytest.approx(2.0)
    assert table.fwd_bwd_s("net", 64, 32) == pytest.approx(4.0)


def test_between_sizes_linear_in_pixel_count(table: TimingTable):
    w = (48 * 48 - 32 * 32) / (64 * 64 - 32 * 32)
    assert table.fwd_bwd_s("net", 16, 48) == pytest.approx((1 - w) * 1.5 + w * 4.0)
    # (H, W) counts its pixels: 40 x 64 = 2560 is half-way between 1024 and 4096
    assert table.fwd_bwd_s("net", 32, (40, 64)) == pytest.approx(0.5 * 2.5 + 0.5 * 9.0)
    assert table.forward_s("net", 48) == pytest.approx((1 - w) * 0.01 + w * 0.04)
    assert table.optimizer_step_s("net", "Adam", 48) == pytest.approx((1 - w) * 0.2 + w * 0.4)


def test_beyond_sizes_pixel_ratio_from_nearest_with_one_warning(table: TimingTable,
                                                                 caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="finetune.timing"):
        assert table.fwd_bwd_s("net", 16, 128) == pytest.approx(4.0 * 4)
        assert table.fwd_bwd_s("net", 32, 128) == pytest.approx(9.0 * 4)
        assert table.fwd_bwd_s("net", 16, 16) == pytest.approx(1.5 / 4)
        assert table.forward_s("net", 128) == pytest.approx(0.16)
    warnings = [r for r in caplog.records if "extrapolated" in r.getMessage()]
    assert len(warnings) == 3  # fwd_bwd at 128 (once), fwd_bwd at 16, forward at 128
    assert "128 px" in warnings[0].getMessage() and "[32, 64]" in warnings[0].getMessage()
    # the optimizer step does not grow with the input: held at the nearest measured size
    assert table.optimizer_step_s("net", "Adam", 128) == pytest.approx(0.4)
    assert table.optimizer_step_s("net", "SGD", 16) == pytest.approx(0.1)


def test_train_step_is_augmentation_plus_fwd_bwd_plus_optimizer(table: TimingTable):
    mp = 16 * 32 * 32 / 1e6
    flip = 0.001 + 0.0001 * 16 + 0.01 * mp
    assert table.augmentation_s("flip", 16, mp) == pytest.approx(flip)
    assert table.train_step_s("net", 16, 32, "Adam", "flip") == pytest.approx(1.5 + 0.2 + flip)
    assert table.train_step_s("net", 16, 32, "SGD", "none") == pytest.approx(1.5 + 0.1)
    # clips of 4 frames: the network sees 64 images, the augmentation 16 clips of 4 frames
    flip4 = 0.001 + 0.0001 * 16 + 0.01 * 4 * mp
    assert table.train_step_s("net", 16, 32, "SGD", "flip", frames=4) == pytest.approx(5.0 + 0.1 + flip4)


def test_flop_models_are_their_coefficients_times_their_terms(table: TimingTable):
    assert table.decode_s("png", 100, 2.0) == pytest.approx(0.1 + 0.1 + 1.0)
    ridge = HAND["ridge"]
    terms = ridge_terms(256, 1280, 10, n_eval=64, n_alphas=4)
    named = dict(zip(MODEL_TERMS["ridge"], terms))
    assert named["svd_wide_s"] == 256 * 1280 * 256 and named["svd_s"] == 0 and named["svd_cube_s"] == 256 ** 3
    assert named["score_s"] == 40 and named["score_value_s"] == 40 * 64
    expected = sum(ridge[name] * t for name, t in zip(MODEL_TERMS["ridge"], terms))
    assert table.ridge_s(256, 1280, 10, n_eval=64) == pytest.approx(expected)
    # without a validation split the penalties are scored by leave-one-out on the n rows
    loo = dict(zip(MODEL_TERMS["ridge"], ridge_terms(100, 50, 3, n_alphas=2)))
    assert loo["score_value_s"] == 2 * 3 * 100 and loo["svd_s"] == 100 * 50 * 50 and loo["svd_wide_s"] == 0
    # n = 0: predictions alone, no fit
    assert table.ridge_s(0, 100, 9, n_eval=1000) == pytest.approx(0.002 + 1e-11 * 9 * 100 * 1000
                                                                   + 1e-9 * 100 * 1000)
    rf = HAND["random_features"]
    expected = sum(rf[name] * t for name, t in zip(MODEL_TERMS["random_features"],
                                                   random_features_terms(4000, 768, 1024, 4000)))
    assert table.random_features_s(4000, 768, 1024, n_fit=4000) == pytest.approx(expected)
    assert random_features_terms(10, 768, 1024)[3:] == [0.0, 0.0]  # transform only: no fit
    assert table.raw_features_s(100, 32 * 32, frames=2) == pytest.approx(0.001 + 1e-9 * 100 * 2 * 3 * 1024
                                                                          + 2e-9 * 100 * 3 * 1024)
    assert table.write_predictions_s(1000) == pytest.approx(0.0015)


# --- refusals -----------------------------------------------------------------------------


def test_missing_costs_are_refused_naming_the_entry_and_the_command(table: TimingTable):
    with pytest.raises(TimingError, match="'resnet18'") as err:
        table.train_step_s("resnet18", 16, 32, "SGD", "none")
    assert "autodl-meta finetune timings" in str(err.value) and "--backbones net,resnet18" in str(err.value)
    assert err.value.field == "backbones.resnet18"
    with pytest.raises(TimingError, match="fast_autoaugment") as err:
        table.train_step_s("net", 16, 32, "SGD", "fast_autoaugment")
    assert "--augmentations none,flip,fast_autoaugment" in str(err.value)
    with pytest.raises(TimingError, match="'jpeg'") as err:
        table.decode_s("jpeg", 10, 1.0)
    assert "--formats png,jpeg" in str(err.value)
    del_adam = copy.deepcopy(HAND)
    del del_adam["backbones"]["net"]["optimizer_step"]["Adam"]
    with pytest.raises(TimingError, match="'Adam' optimizer step") as err:
        TimingTable.from_dict(del_adam).optimizer_step_s("net", "Adam", 32)
    assert "--optimizers SGD,Adam" in str(err.value)


def test_check_names_what_a_configuration_lacks(table: TimingTable):
    table.check({"backbone": "net", "optimizer": "Adam", "augmentation": "flip"}, frames=4, fmt="png")
    for config, missing in [
            ({"backbone": "resnet18", "optimizer": "SGD", "augmentation": "none"}, "resnet18"),
            ({"backbone": "net", "optimizer": "Adam", "augmentation": "fast_autoaugment"},
             "fast_autoaugment")]:
        with pytest.raises(TimingError, match=missing):
            table.check(config)
    with pytest.raises(TimingError, match="dense"):
        table.check({"backbone": "net", "optimizer": "SGD", "augmentation": "none"}, fmt="dense")
    with pytest.raises(TimingError, match="optimizer"):
        table.check({"backbone": "net", "augmentation": "none"})


def test_a_loaded_table_names_its_file_in_errors(table: TimingTable, tmp_path: Path):
    path = table.save(tmp_path / "t.json")
    loaded = TimingTable.load(path)
    with pytest.raises(TimingError) as err:
        loaded.forward_s("resnet18", 32)
    assert str(err.value).startswith(str(path)) and f"--out {path}" in str(err.value)


# --- files --------------------------------------------------------------------------------


def test_save_load_round_trip(table: TimingTable, tmp_path: Path):
    path = table.save(tmp_path / "sub" / "table.json")
    loaded = TimingTable.load(path)
    assert loaded.to_dict() == table.to_dict() == json.loads(path.read_text())
    assert loaded.path == path and loaded.machine == HAND["machine"] and loaded.threads == 1
    for size in (16, 32, 48, 64, 100):
        args = ("net", 32, size, "Adam", "flip")
        assert loaded.train_step_s(*args) == table.train_step_s(*args)


def test_version_1_table_is_refused(tmp_path: Path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"machine": "m", "device": "cpu", "threads": 2, "created": "",
                                "entries": [{"backbone": "scratch_cnn", "batch_size": 16, "input_size": 32,
                                             "train_batch_s": 0.1, "test_example_s": 0.001}]}))
    with pytest.raises(TimingError, match="version-1") as err:
        TimingTable.load(path)
    assert err.value.path == path and err.value.field == "version"
    assert f"autodl-meta finetune timings --out {path}" in str(err.value)


def _set(data: dict, keys: str, value: Any) -> None:
    *parents, last = keys.split(".")
    for key in parents:
        data = data[key]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()


@pytest.mark.parametrize("keys,value,field", [
    ("version", 3, "version"),
    ("ridge", _DELETE, "ridge"),
    ("backbones.net.fwd_bwd.32", [[16, -1.0]], "backbones.net.fwd_bwd.32"),
    ("backbones.net.fwd_bwd.32", [[0, 1.0]], "backbones.net.fwd_bwd.32"),
    ("backbones.net.fwd_bwd.32", [], "backbones.net.fwd_bwd.32"),
    ("backbones.net.forward", {"big": 0.1}, "backbones.net.forward"),
    ("backbones.net.optimizer_step", _DELETE, "backbones.net"),
    ("decode.png", {"call_s": 0.1}, "decode.png"),
    ("augmentation.flip.clip_s", "fast", "augmentation.flip.clip_s"),
    ("threads", "two", "threads"),
])
def test_malformed_tables_are_refused_naming_the_field(tmp_path: Path, keys: str, value: Any, field: str):
    data = copy.deepcopy(HAND)
    _set(data, keys, value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TimingError) as err:
        TimingTable.load(path)
    assert err.value.path == path and err.value.field == field
    assert str(err.value).startswith(f"{path}: field '{field}'")


def test_unreadable_files_are_refused(tmp_path: Path):
    with pytest.raises(TimingError, match="not found"):
        TimingTable.load(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(TimingError, match="not JSON"):
        TimingTable.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("[]")
    with pytest.raises(TimingError, match="JSON object"):
        TimingTable.load(tmp_path / "y.json")


# --- one tiny real measurement --------------------------------------------------------------


@pytest.fixture(scope="module")
def measured() -> tuple[TimingTable, int, int]:
    import torch

    before = torch.get_num_threads()
    calls: list[int] = []
    table = measure_timings(["scratch_cnn", "linear"], [2, 4], [16, 24], repeats=1, quick=True,
                            progress=calls.append)
    return table, before, sum(calls)


def test_measured_table_prices_everything_positively(measured: tuple[TimingTable, int, int]):
    import torch

    table, threads_before, progress = measured
    assert torch.get_num_threads() == threads_before  # restored
    assert table.threads == 1 and table.device == "cpu" and "measure_timings" in table.command
    assert progress == count_measurements(["scratch_cnn", "linear"], [16, 24], FORMATS)
    assert table.backbones == ["linear", "scratch_cnn"] and table.input_sizes("scratch_cnn") == [16, 24]
    for backbone in table.backbones:
        for opt in OPTIMIZERS:
            for aug in AUGMENTATIONS:
                for size in (16, 20, 24, (16, 24)):
                    for frames in (1, 3):
                        assert table.train_step_s(backbone, 3, size, opt, aug, frames) > 0
        assert table.forward_s(backbone, 20) > 0
    for fmt in FORMATS:
        assert table.decode_s(fmt, 100, 0.1) > 0
    assert table.ridge_s(256, 192, 10, n_eval=32) > 0 and table.ridge_s(0, 192, 10, n_eval=100) > 0
    assert table.ridge_s(64, 768, 2) > 0
    assert table.random_features_s(256, 768, 1024, n_fit=256) > 0 and table.random_features_s(100, 48, 64) > 0
    assert table.raw_features_s(256, 32 * 32) > 0
    assert table.write_predictions_s(1000) > 0
    assert table.augmentation_s("fast_autoaugment", 4, 0.01) > 0


def test_measured_table_checks_a_config_and_survives_a_round_trip(measured: tuple[TimingTable, int, int],
                                                                  tmp_path: Path):
    from finetune.config import validate_config

    table = measured[0]
    config = validate_config({"backbone": "scratch_cnn", "optimizer": "SGD", "input_size": 32,
                              "batch_size": 16, "augmentation": "fast_autoaugment"})
    table.check(config, frames=2, fmt="jpeg")
    with pytest.raises(TimingError, match="--backbones scratch_cnn,linear,resnet18"):
        table.check({**config, "backbone": "resnet18"})
    loaded = TimingTable.load(table.save(tmp_path / "measured.json"))
    assert loaded.to_dict() == table.to_dict()
    assert loaded.train_step_s("scratch_cnn", 16, 32, "Adam", "flip") == \
        table.train_step_s("scratch_cnn", 16, 32, "Adam", "flip")
    assert set(table.to_dict()["measurements"]) >= {"augmentation", "decode", "ridge", "random_features",
                                                    "raw_features", "write_predictions"}


def test_unknown_names_are_refused_before_measuring():
    with pytest.raises(TimingError, match="optimizers"):
        measure_timings(["scratch_cnn"], [2], [16], optimizers=["RMSprop"])
    with pytest.raises(TimingError, match="backbones"):
        measure_timings(["no_such_net"], [2], [16])


def test_data_format_tells_png_jpeg_and_dense(tmp_path: Path):
    from autodl.metadata import DENSE
    from autodl.writer import write_arrays

    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    y = [0, 1, 0, 1]
    write_arrays(tmp_path / "p", "p", x, y, x, y)
    write_arrays(tmp_path / "j", "j", x, y, x, y, image_format="JPEG")
    write_arrays(tmp_path / "d", "d", x / 255.0, y, x / 255.0, y, fmt=DENSE)
    assert [data_format(tmp_path / n) for n in "pjd"] == ["png", "jpeg", "dense"]


# --- command line ---------------------------------------------------------------------------


def test_cli_records_the_full_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture):
    import finetune.timing_measurement
    from autodl_meta.cli import main

    seen: dict[str, Any] = {}

    def fake(backbones: Any, batch_sizes: Any, input_sizes: Any, optimizers: Any, augmentations: Any,
             formats: Any, **kwargs: Any) -> TimingTable:
        seen.update(backbones=backbones, batch_sizes=batch_sizes, input_sizes=input_sizes,
                    optimizers=optimizers, augmentations=augmentations, formats=formats, **kwargs)
        return TimingTable.from_dict({**copy.deepcopy(HAND), "command": kwargs["command"]})

    monkeypatch.setattr(finetune.timing_measurement, "measure_timings", fake)
    out = tmp_path / "t.json"
    assert main(["finetune", "timings", "--out", str(out), "--backbones", "scratch_cnn", "--sizes", "16,24",
                 "--batch-sizes", "2,4", "--augmentations", "none,flip"]) == 0
    assert seen["backbones"] == ["scratch_cnn"] and seen["input_sizes"] == [16, 24] and seen["threads"] == 1
    assert seen["augmentations"] == ["none", "flip"] and seen["optimizers"] == ["SGD", "Adam"]
    command = TimingTable.load(out).command
    assert command == (f"autodl-meta finetune timings --out {out} --backbones scratch_cnn --batch-sizes 2,4 "
                       f"--sizes 16,24 --optimizers SGD,Adam --augmentations none,flip "
                       f"--formats png,jpeg,dense --threads 1 --repeats 5 --device cpu")
    assert "wrote" in capsys.readouterr().out
    assert main(["finetune", "timings", "--out", str(out), "--sizes", "16,x"]) == 2
