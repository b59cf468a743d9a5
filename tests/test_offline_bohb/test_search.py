"""What BOHB searches with the default build's settings, over the real (conditional) fine-tuning
space, measured with the synthetic objective (instant trials): each dataset's own seed, the warm
start, the share of model-based samples, and the conditions in what is sampled.

Two runs (an image dataset and a video dataset, whose spaces differ) through the real machinery
(nameserver, two worker processes, master); no assertion reads the wall clock.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_squares, write_variant

from offline_bohb.run import RunFolder, derive_seed, planned_trials, sample_counts
from portfolio.build import BuildSettings, bohb_spec, rehearse_search, run_complete

FINETUNE_ONLY = {"optimizer", "batch_size", "learning_rate", "dropout", "weight_decay", "warmup_epochs", "lr_schedule",
                 "tau", "augmentation"}
VIDEO_ONLY = {"frames_per_clip", "temporal"}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, Path]]:
    """The default build's BOHB step (BuildSettings()) on a 16 px RGB dataset and on RGB clips."""
    root = tmp_path_factory.mktemp("search")
    datasets = {"squares": write_squares(root / "squares"), "clips": write_variant(root, "video").root}
    summary = rehearse_search(BuildSettings(), root / "out", datasets=list(datasets.items()))
    return root / "out", summary, datasets


def _samples(run_dir: Path) -> list[dict]:
    return [c for c in RunFolder(run_dir).configs() if not c["info"].get("warm_start")]


def test_each_datasets_run_has_its_own_seed_and_its_own_samples(rehearsal):
    out, summary, _ = rehearsal
    runs = {name: RunFolder(out / "runs" / name).read_run() for name in ("squares", "clips")}
    for name, run in runs.items():
        assert run["bohb_seed"] == derive_seed(0, name) == summary["runs"][name]["bohb_seed"]
        assert run["bohb_seed_from"] == {"build_seed": 0, "dataset": name, "function": "offline_bohb.run.derive_seed"}
        assert run["seed"] == 0  # the evaluations share the build's seed (that of the cost matrix)
    assert runs["squares"]["bohb_seed"] != runs["clips"]["bohb_seed"]
    first = [json.dumps(c["encoded"], sort_keys=True) for c in _samples(out / "runs" / "squares")]
    other = [json.dumps(c["encoded"], sort_keys=True) for c in _samples(out / "runs" / "clips")]
    assert len(set(first)) == len(first) and not set(first) & set(other)  # no sample twice, none shared
    warm = {json.dumps(c["encoded"], sort_keys=True) for c in RunFolder(out / "runs" / "squares").configs()
            if c["info"].get("warm_start")}
    assert not warm & set(first)  # nor a warm-start configuration sampled again


def test_with_the_default_settings_most_samples_after_the_first_bracket_are_model_based(rehearsal):
    out, summary, _ = rehearsal
    settings = BuildSettings()
    for name in ("squares", "clips"):
        run_dir = out / "runs" / name
        counts = sample_counts(run_dir)
        samples = _samples(run_dir)
        assert counts == {k: v for k, v in summary["runs"][name].items() if k != "bohb_seed"}
        assert counts["samples"] == len(samples) == 15  # 3 brackets: 9 + 3 + 3 samples
        assert counts["model_based"] == sum(c["info"]["model_based_pick"] for c in samples)
        assert counts["after_first"] == 6
        assert counts["share_after_first"] >= 0.5, (name, counts)
        assert {c["info"].get("why") for c in samples if not c["info"]["model_based_pick"]} <= {
            "random fraction", "no model yet"}
        run = RunFolder(run_dir).read_run()
        assert run["iterations"] == settings.iterations == 3 and run["bohb"]["random_fraction"] == 0.2
    assert summary["all"]["share_after_first"] >= 0.5 and summary["all"]["lowest_share_after_first"] >= 0.5


def test_the_warm_start_runs_first_at_full_budget_and_no_incumbent_is_weaker(rehearsal):
    from finetune.grid import CORE, GRID
    from portfolio.incumbents import select_incumbent

    out, _, _ = rehearsal
    for name in ("squares", "clips"):
        folder = RunFolder(out / "runs" / name)
        trials = folder.trials()
        warm = [t for t in trials if t["config_id"][0] == 0]
        names = [c["info"]["warm_start"] for c in folder.configs() if c["info"].get("warm_start")]
        assert names == [n for n in GRID if n in CORE] and len(warm) == len(CORE) == 7  # baseline:default among them (grid-core)
        assert {t["budget"] for t in warm} == {1.0}
        # the warm start came first (the first bracket starts once its last jobs are out to the workers)
        assert all(t["config_id"][0] == 0 for t in trials[:len(warm) - 2])
        best_warm = max(t["alc"] for t in warm)
        incumbent = select_incumbent(trials)
        assert incumbent["budget"] == 1.0 and incumbent["alc"] >= best_warm
        # BOHB's brackets come after it: iteration 1 is the first bracket (9 configurations at 1/9)
        assert sorted({t["config_id"][0] for t in trials}) == [0, 1, 2, 3]
        assert sum(1 for t in trials if t["config_id"][0] == 1 and t["budget"] < 0.2) == 9


def test_what_is_sampled_respects_the_conditions_and_the_datasets_shape(rehearsal):
    out, _, _ = rehearsal
    runs = {name: RunFolder(out / "runs" / name) for name in ("squares", "clips")}
    assert runs["squares"].read_run()["space"]["dimensions"] == 20
    assert runs["clips"].read_run()["space"]["dimensions"] == 22
    assert runs["squares"].read_run()["space"]["data"] == {"video": False, "channels": 3}
    seen_probes_only = seen_scratch = 0
    for name, folder in runs.items():
        for c in folder.configs():
            encoded = c["encoded"]
            assert "channel_adapter" not in encoded  # 3 channels: nothing to adapt
            if name == "squares":
                assert not VIDEO_ONLY & set(encoded)  # no video options on images
            elif not c["info"].get("warm_start"):
                assert VIDEO_ONLY <= set(encoded)
            if encoded["finetune"] is False:
                seen_probes_only += 1
                assert not FINETUNE_ONLY & set(encoded)  # no fine-tuning hyperparameter without fine-tuning
                assert encoded["probes"] != "none"
            if encoded["backbone"] == "scratch_cnn":
                seen_scratch += 1
                assert "pretrained" not in encoded  # scratch_cnn is never pretrained
        for t in folder.trials():  # what a trial evaluates is complete: every hyperparameter of the space
            assert len(t["config"]) == 23
            if t["config"]["backbone"] == "scratch_cnn" and t["config_id"][0] > 0:
                assert t["config"]["pretrained"] is False
    assert seen_probes_only and seen_scratch


@pytest.mark.slow
def test_a_second_pass_repeats_nothing(rehearsal):
    from offline_bohb.local import run_local

    out, summary, datasets = rehearsal
    settings = BuildSettings()
    run_dir = out / "runs" / "squares"
    run = RunFolder(run_dir).read_run()
    assert run_complete(run_dir, settings) and planned_trials(run) == 7 + 13 + 4 + 3
    spec = bohb_spec(settings, "squares", datasets["squares"], "rehearse_search")
    spec.objective, spec.objective_args = "offline_bohb.synthetic:synthetic_evaluator", {"seconds": 0.0}
    again = run_local(spec, run_dir, workers=1, ping_interval=1)
    assert again.new_trials == 0 and again.replayed == planned_trials(run)
    assert again.samples == {k: v for k, v in summary["runs"]["squares"].items() if k != "bohb_seed"}


def test_bohb_show_reports_seeds_warm_start_and_model_based_samples(rehearsal, capsys):
    from autodl_meta.cli import main

    out, summary, _ = rehearsal
    assert main(["bohb", "show", "--out", str(out / "runs" / "clips")]) == 0
    text = capsys.readouterr().out
    counts = summary["runs"]["clips"]
    assert f"BOHB {derive_seed(0, 'clips')} (derived from build seed 0 and 'clips')" in text
    assert "22 dimensions searched (video True, 3 channels)" in text
    assert (f"warm start: 7 configurations; BOHB sampled 15, {counts['model_based']} by its model; after the "
            f"first bracket {counts['model_based_after_first']} of 6") in text
