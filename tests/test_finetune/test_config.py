"""The fine-tuning configuration space (configs/space/finetune.yaml) and finetune.config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ConfigSpace import ConfigurationSpace, OrdinalHyperparameter

from autodl.errors import AutoDLError
from finetune.config import (
    DEFAULT_SPACE_PATH,
    ConfigError,
    SpaceError,
    config_to_json,
    default_config,
    load_config,
    load_space,
    sample_configs,
    validate_config,
)

REPO = Path(__file__).resolve().parents[2]
HYPERPARAMETERS = {
    "backbone", "optimizer", "batch_size", "learning_rate", "dropout", "weight_decay",
    "input_size", "warmup_epochs", "lr_schedule", "tau", "frames_per_clip", "augmentation",
    "test_time_flip", "pretrained",
    # the anytime plan, the resolution policy, test calls (issue 6)
    "probes", "probe_examples", "finetune", "min_input_size", "num_predictions",
    # input adaptation and video motion (issue 6)
    "channel_adapter", "temporal",
    # a portfolio worth selecting from (the space): partial fine-tuning, the probes' share of the budget
    "train_layers", "probe_share",
}
PRETRAINED = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2", "resnet18"]
FINETUNE_ONLY = {"optimizer", "batch_size", "learning_rate", "dropout", "weight_decay", "warmup_epochs", "lr_schedule",
                 "tau", "augmentation"}
NEW_KNOBS = {"train_layers": "all", "probe_share": 1.0}
"""The knobs added after the committed configurations were written, at the values that do what the
learner did before them (what validate_config fills into those configurations)."""
PYTHON_TYPES = (str, int, float, bool)
BATCH_SIZES = ["16", "32", "64", "128"]


@pytest.fixture(scope="module")
def space() -> ConfigurationSpace:
    return load_space()


def _assert_plain(config: dict) -> None:
    for name, value in config.items():
        assert type(value) in PYTHON_TYPES, (name, value, type(value))
        assert not isinstance(value, np.generic), (name, value)


# --------------------------------------------------------------------------- the space

def test_space_has_exactly_the_issue_hyperparameters(space: ConfigurationSpace) -> None:
    assert DEFAULT_SPACE_PATH == REPO / "configs" / "space" / "finetune.yaml"
    assert set(space.keys()) == HYPERPARAMETERS
    # conditional (issue 16): training options only when fine-tuning, pretrained only for networks that
    # have weights, probe_examples only for the embedding probe; never neither probes nor fine-tuning;
    # train_layers only for a pretrained network that is fine-tuned, probe_share only for probes
    # followed by fine-tuning (both parents must hold: an and-conjunction)
    parents: dict[str, set[str]] = {}
    for condition in space.conditions:
        for part in getattr(condition, "components", [condition]):
            parents.setdefault(part.child.name, set()).add(part.parent.name)
    assert parents == {**{name: {"finetune"} for name in FINETUNE_ONLY}, "pretrained": {"backbone"},
                       "probe_examples": {"probes"}, "train_layers": {"finetune", "pretrained"},
                       "probe_share": {"finetune", "probes"}}
    assert [str(f) for f in space.forbidden_clauses] == [
        "(Forbidden: probes == 'none' && Forbidden: finetune == False)"]
    assert list(space["backbone"].choices) == [*PRETRAINED, "scratch_cnn"]
    assert set(space["optimizer"].choices) == {"Adam", "SGD"}
    assert list(space["batch_size"].sequence) == [16, 32, 64, 128]
    assert isinstance(space["batch_size"], OrdinalHyperparameter)
    assert list(space["input_size"].sequence) == [32, 64, 96, 128, 160, 224]
    assert list(space["min_input_size"].sequence) == [32, 64, 96, 128, 160, 224]
    assert (space["learning_rate"].lower, space["learning_rate"].upper, space["learning_rate"].log) == (
        1e-5, 0.5, True)
    assert (space["dropout"].lower, space["dropout"].upper) == (0.01, 0.99)
    assert (space["tau"].lower, space["tau"].upper) == (1.0, 16.0)
    assert (space["frames_per_clip"].lower, space["frames_per_clip"].upper) == (1, 16)
    assert set(space["lr_schedule"].choices) == {"plateau", "cosine"}
    assert set(space["augmentation"].choices) == {"none", "flip", "fast_autoaugment"}
    assert set(space["test_time_flip"].choices) == {True, False}
    for hp in space.values():
        assert hp.meta and hp.meta["doc"].strip(), hp.name


def test_backbone_choices_follow_the_registry(space: ConfigurationSpace) -> None:
    backbones = pytest.importorskip("finetune.backbones")
    assert set(space["backbone"].choices) == {*backbones.list_backbones(pretrained_only=True), "scratch_cnn"}


def test_default_config_is_plain_and_valid(space: ConfigurationSpace) -> None:
    config = default_config()
    assert set(config) == HYPERPARAMETERS
    _assert_plain(config)
    assert config["backbone"] == "tf_efficientnet_lite0"
    assert config["batch_size"] == 32 and type(config["batch_size"]) is int
    assert config["learning_rate"] == pytest.approx(1e-3)
    assert config["dropout"] == pytest.approx(0.2)
    assert config["input_size"] == 64
    assert config["tau"] == 8.0
    assert config["frames_per_clip"] == 4
    assert config["test_time_flip"] is False
    assert validate_config(config, space) == config


def test_sample_configs_are_valid_plain_and_reproducible(space: ConfigurationSpace) -> None:
    configs = sample_configs(20)
    assert len(configs) == 20
    for config in configs:
        assert set(config) == HYPERPARAMETERS
        _assert_plain(config)
        assert type(config["test_time_flip"]) is bool
        assert type(config["batch_size"]) is int
        assert validate_config(config, space) == config
        json.loads(config_to_json(config))  # hpbandster / Pyro4 and portfolio.json need plain values
    assert sample_configs(20) == configs
    assert sample_configs(20, seed=1) != configs
    assert sample_configs(1, seed=3) == sample_configs(1, seed=3)
    assert sample_configs(0) == []
    assert len({config_to_json(c) for c in configs}) == 20
    with pytest.raises(ValueError, match="n must be"):
        sample_configs(-1)


def test_load_space_seed_fixes_sampling() -> None:
    first = load_space(seed=7).sample_configuration(5)
    second = load_space(seed=7).sample_configuration(5)
    assert [dict(c) for c in first] == [dict(c) for c in second]


# --------------------------------------------------------------------------- validation

def test_missing_keys_are_filled_from_the_defaults(space: ConfigurationSpace) -> None:
    config = validate_config({"backbone": "resnet18", "learning_rate": 0.01}, space)
    assert config == {**default_config(space), "backbone": "resnet18", "learning_rate": 0.01}
    assert validate_config({}, space) == default_config(space)


def test_values_are_converted_to_python_types(space: ConfigurationSpace) -> None:
    config = validate_config({
        "batch_size": np.int64(64), "input_size": 32.0, "frames_per_clip": 8.0,
        "warmup_epochs": 1, "tau": np.float32(2.0), "test_time_flip": np.bool_(True),
        "optimizer": np.str_("SGD"),
    }, space)
    _assert_plain(config)
    assert config["batch_size"] == 64 and type(config["batch_size"]) is int
    assert config["input_size"] == 32 and type(config["input_size"]) is int
    assert config["frames_per_clip"] == 8 and type(config["frames_per_clip"]) is int
    assert config["warmup_epochs"] == 1 and type(config["warmup_epochs"]) is float
    assert config["tau"] == 2.0 and type(config["tau"]) is float
    assert config["test_time_flip"] is True
    assert type(config["optimizer"]) is str


@pytest.mark.parametrize(("config", "parameter", "shown", "allowed"), [
    pytest.param({"lr": 0.01}, "lr", "0.01", ["learning_rate", "batch_size"], id="unknown-key"),
    pytest.param({"learning_rate": 0.9}, "learning_rate", "0.9", ["1e-05", "0.5"], id="float-above"),
    pytest.param({"dropout": 0.0}, "dropout", "0.0", ["0.01", "0.99"], id="float-below"),
    pytest.param({"tau": float("nan")}, "tau", "nan", ["1.0", "16.0"], id="float-nan"),
    pytest.param({"optimizer": "adam"}, "optimizer", "'adam'", ["'Adam'", "'SGD'"], id="bad-categorical"),
    pytest.param({"backbone": "resnet50"}, "backbone", "'resnet50'", ["'resnet18'", "'scratch_cnn'"],
                 id="bad-backbone"),
    pytest.param({"batch_size": 32.5}, "batch_size", "32.5", BATCH_SIZES, id="non-integer-batch"),
    pytest.param({"batch_size": 48}, "batch_size", "48", BATCH_SIZES, id="batch-not-a-choice"),
    pytest.param({"frames_per_clip": 2.5}, "frames_per_clip", "2.5", ["1", "16"], id="non-integer-int"),
    pytest.param({"frames_per_clip": 17}, "frames_per_clip", "17", ["1", "16"], id="int-above"),
    pytest.param({"learning_rate": "1e-3"}, "learning_rate", "'1e-3'", ["1e-05", "0.5"],
                 id="string-for-float"),
    pytest.param({"frames_per_clip": True}, "frames_per_clip", "true", ["1", "16"], id="bool-for-int"),
    pytest.param({"test_time_flip": "yes"}, "test_time_flip", "'yes'", ["false", "true"],
                 id="string-for-bool"),
    pytest.param({"test_time_flip": 1}, "test_time_flip", "1", ["false", "true"], id="int-for-bool"),
    pytest.param({"batch_size": "32"}, "batch_size", "'32'", ["16", "32"], id="string-for-int"),
])
def test_refusals_name_parameter_value_and_allowed(space: ConfigurationSpace, config: dict, parameter: str,
                                                   shown: str, allowed: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(config, space, source="my_config.yaml")
    error = info.value
    assert isinstance(error, AutoDLError)
    assert error.field == parameter
    assert error.path == Path("my_config.yaml")
    message = str(error)
    assert message.startswith("my_config.yaml: ")
    assert f"'{parameter}'" in message
    assert f"got {shown}" in message
    for value in allowed:
        assert value in message


def test_refusal_without_source_and_hints(space: ConfigurationSpace) -> None:
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'") as info:
        validate_config({"learning_rat": 0.01}, space)
    assert info.value.path is None
    with pytest.raises(ConfigError, match="did you mean 'SGD'"):
        validate_config({"optimizer": "sgd"}, space)
    with pytest.raises(ConfigError, match="must be a mapping"):
        validate_config([("backbone", "resnet18")], space)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- files

@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "with-metadata"])
def test_load_config_round_trip(tmp_path: Path, space: ConfigurationSpace, suffix: str,
                                wrapped: bool) -> None:
    config = sample_configs(1, seed=11)[0]
    data = {"name": "sampled", "source": "sample_configs(seed=11)", "config": config} if wrapped else config
    path = tmp_path / f"config{suffix}"
    if suffix == ".json":
        path.write_text(config_to_json(data) if not wrapped else json.dumps(data, indent=2))
    else:
        path.write_text(yaml.safe_dump(data))
    assert load_config(path, space) == config
    assert config_to_json(load_config(path)) == config_to_json(config)


def test_load_config_partial_yaml_with_usual_float_notation(tmp_path: Path) -> None:
    path = tmp_path / "partial.yml"
    path.write_text("backbone: resnet18\nlearning_rate: 1e-3\nweight_decay: 5e-5\ntest_time_flip: true\n")
    config = load_config(path)
    assert config["learning_rate"] == 1e-3 and config["weight_decay"] == 5e-5
    assert config["test_time_flip"] is True
    assert config["batch_size"] == default_config()["batch_size"]


@pytest.mark.parametrize(("name", "text", "match"), [
    ("bad_value.yaml", "config:\n  dropout: 1.5\n", r"bad_value\.yaml: field 'dropout': got 1\.5"),
    ("duplicate.yaml", "tau: 2\ntau: 4\n", r"duplicate\.yaml: not valid YAML: found the key 'tau' twice"),
    ("broken.yaml", "tau: [2\n", r"broken\.yaml: not valid YAML"),
    ("list.yaml", "- tau\n", r"list\.yaml: expected a mapping"),
    ("config_list.yaml", "config: [1, 2]\n", r"config_list\.yaml: field 'config'"),
    ("broken.json", '{"tau": 2,}', r"broken\.json: not valid JSON"),
    ("duplicate.json", '{"tau": 2, "tau": 3}', r"duplicate\.json: not valid JSON: found the key 'tau' twice"),
])
def test_load_config_refusals_name_the_file(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nowhere.yaml")


def test_shipped_default_config_validates(space: ConfigurationSpace) -> None:
    path = REPO / "configs" / "finetune" / "default.yaml"
    config = load_config(path, space)
    _assert_plain(config)
    # Every hyperparameter is set in the file itself, none silently filled from the space.
    assert set(yaml.safe_load(path.read_text())["config"]) == HYPERPARAMETERS
    assert config["backbone"] == "tf_efficientnet_lite0"
    assert config["optimizer"] == "SGD"
    assert config["tau"] == 8.0


def test_config_to_json_is_stable(space: ConfigurationSpace) -> None:
    config = default_config(space)
    text = config_to_json(config)
    assert text == config_to_json(dict(reversed(list(config.items()))))
    assert list(json.loads(text)) == sorted(config)
    assert json.loads(text) == config
    assert config_to_json({"batch_size": np.int64(32), "test_time_flip": np.bool_(False)}) == (
        '{"batch_size": 32, "test_time_flip": false}')


# --------------------------------------------------------------------------- malformed spaces

_GOOD_ENTRY = ("  tau:\n    type: float\n    bounds: [1.0, 16.0]\n    log: true\n    default: 8.0\n"
               "    doc: Temperature.\n")


@pytest.mark.parametrize(("entry", "match"), [
    pytest.param("  lr:\n    type: float\n    bounds: [0.5, 1.0e-5]\n    default: 0.1\n    doc: x\n",
                 "lower < upper", id="reversed-bounds"),
    pytest.param("  lr:\n    type: float\n    bounds: [0.0, 1.0]\n    log: true\n    default: 0.1\n"
                 "    doc: x\n", "lower > 0", id="log-from-zero"),
    pytest.param("  lr:\n    type: float\n    bounds: [1.0e-5, 0.5]\n    default: 0.9\n    doc: x\n",
                 "bad 'default': got 0.9", id="default-out-of-range"),
    pytest.param("  lr:\n    type: real\n    bounds: [1.0e-5, 0.5]\n    default: 0.1\n    doc: x\n",
                 "'type' must be one of", id="unknown-type"),
    pytest.param("  lr:\n    type: float\n    bounds: [1.0e-5, 0.5]\n    defualt: 0.1\n    doc: x\n",
                 "unknown key", id="misspelt-key"),
    pytest.param("  lr:\n    type: float\n    bounds: [1.0e-5, 0.5]\n    default: 0.1\n",
                 "missing key.*'doc'", id="no-doc"),
    pytest.param("  lr:\n    type: float\n    bounds: 0.5\n    default: 0.1\n    doc: x\n",
                 "'bounds' must be a list", id="scalar-bounds"),
    pytest.param("  lr:\n    type: int\n    bounds: [1, 2.5]\n    default: 1\n    doc: x\n",
                 "must be integers", id="float-bounds-for-int"),
    pytest.param("  lr:\n    type: categorical\n    choices: []\n    default: a\n    doc: x\n",
                 "non-empty list", id="no-choices"),
    pytest.param("  lr:\n    type: categorical\n    choices: [a, b]\n    default: c\n    doc: x\n",
                 "bad 'default'", id="default-not-a-choice"),
    pytest.param("  lr:\n    type: categorical\n    choices: [false, true]\n    default: 1\n    doc: x\n",
                 "bad 'default'", id="int-default-for-bool"),
    pytest.param("  lr:\n    type: categorical\n    choices: [a, a]\n    default: a\n    doc: x\n",
                 "duplicates", id="duplicate-choices"),
    pytest.param("  lr: 0.1\n", "expected a mapping", id="not-a-mapping"),
])
def test_malformed_space_names_file_and_hyperparameter(tmp_path: Path, entry: str, match: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("name: broken\nhyperparameters:\n" + _GOOD_ENTRY + entry)
    with pytest.raises(SpaceError, match=match) as info:
        load_space(path)
    error = info.value
    assert isinstance(error, AutoDLError)
    assert error.path == path and str(path) in str(error)
    assert error.field == "lr" and "'lr'" in str(error)


@pytest.mark.parametrize(("text", "match"), [
    ("hyperparameters: [a, b]\n", "'hyperparameters' mapping"),
    ("name: x\nhyperparameter:\n" + _GOOD_ENTRY, "'hyperparameters' mapping"),
    ("name: x\nseed: 3\nhyperparameters:\n" + _GOOD_ENTRY, "unknown top-level key"),
    ("hyperparameters:\n" + _GOOD_ENTRY + _GOOD_ENTRY, "found the key 'tau' twice"),
    ("hyperparameters: {tau: [\n", "not valid YAML"),
])
def test_malformed_space_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=match) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="file not found"):
        load_space(tmp_path / "none.yaml")


def test_small_space_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("hyperparameters:\n" + _GOOD_ENTRY)
    small = load_space(path, seed=0)
    assert list(small.keys()) == ["tau"] and small.name == "small"
    assert small["tau"].meta == {"doc": "Temperature."}
    assert validate_config({"tau": 3}, small) == {"tau": 3.0}
    with pytest.raises(ConfigError, match="'backbone'"):
        validate_config({"backbone": "resnet18"}, small)


def test_a_changed_space_file_is_read_again_and_callers_share_nothing(tmp_path: Path) -> None:
    """The parsed file is kept while it is unchanged (validating a configuration reads it every
    time); an edit is seen at once, and no caller's space reaches another's."""
    path = tmp_path / "small.yaml"
    path.write_text("hyperparameters:\n" + _GOOD_ENTRY)
    first, again = load_space(path), load_space(path)
    assert first is not again and list(first.keys()) == list(again.keys()) == ["tau"]
    first.meta["doc"] = "changed by a caller"
    assert load_space(path).meta.get("doc") != "changed by a caller"
    path.write_text("hyperparameters:\n" + _GOOD_ENTRY.replace("Temperature.", "Softmax temperature, edited."))
    assert load_space(path)["tau"].meta == {"doc": "Softmax temperature, edited."}
    path.write_text("hyperparameters: [not, a, mapping]\n")
    with pytest.raises(SpaceError, match="small.yaml"):
        load_space(path)

# --------------------------------------------------------------------------- what can run here

@pytest.fixture()
def resnet18_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without ResNet-18's weights file (whatever this one has)."""
    from finetune import backbones

    real = backbones.find_weights

    def find(name: str, weights_path: object = None) -> Path:
        if name == "resnet18":
            raise backbones.PretrainedWeightsNotFoundError("resnet18: no weights file (test)")
        return real(name, weights_path)

    monkeypatch.setattr(backbones, "find_weights", find)
    monkeypatch.setattr(backbones, "weights_available", lambda name, weights_path=None: name != "resnet18"
                        and backbones.get_backbone_cfg(name).has_pretrained)


def test_check_runnable_refuses_absent_weights_naming_the_fix(resnet18_absent: None) -> None:
    from finetune.config import check_runnable

    config = validate_config({"backbone": "resnet18"})
    with pytest.raises(ConfigError) as info:
        check_runnable(config, source="incumbent.yaml")
    assert info.value.field == "backbone"
    message = str(info.value)
    assert "incumbent.yaml" in message and "resnet18" in message and "pretrained: true" in message
    assert "tf_efficientnet_lite0" in message  # an alternative that can run here is named
    # from random initialisation it runs: nothing to find
    assert check_runnable(validate_config({"backbone": "resnet18", "pretrained": False}))["backbone"] == "resnet18"
    assert check_runnable(validate_config({"backbone": "tf_efficientnet_lite0"}))


def test_runnable_space_never_samples_absent_weights(resnet18_absent: None) -> None:
    from finetune.config import runnable_space

    drawn = sample_configs(200, seed=3)
    assert not [c for c in drawn if c["backbone"] == "resnet18" and c["pretrained"]]
    assert [c for c in drawn if c["backbone"] == "resnet18"]  # still there, from random weights
    space = runnable_space(seed=0)
    assert [f for f in space.forbidden_clauses if "resnet18" in str(f)]  # beside the space's own clause
    # the whole declared space, for another machine, still offers it
    assert [c for c in sample_configs(200, seed=3, runnable_only=False)
            if c["backbone"] == "resnet18" and c["pretrained"]]


def test_resolve_model_refuses_an_unrunnable_config_before_anything_runs(resnet18_absent: None,
                                                                          tmp_path: Path) -> None:
    from finetune.models import resolve_model

    path = tmp_path / "incumbent.yaml"
    path.write_text("config:\n  backbone: resnet18\n")
    with pytest.raises(ConfigError, match="incumbent.yaml.*resnet18"):
        resolve_model(f"config:{path}")


# --------------------------------------------------------------------------- conditions (issue 16)

def test_sampled_configurations_respect_the_conditions() -> None:
    from finetune.config import active_hyperparameters, runnable_space

    space = runnable_space(seed=0)
    drawn = sample_configs(300, seed=5)
    assert {c["finetune"] for c in drawn} == {True, False} and "scratch_cnn" in {c["backbone"] for c in drawn}
    for config in drawn:
        assert set(config) == HYPERPARAMETERS  # complete: what the learner reads
        active = set(active_hyperparameters(config, space))
        if not config["finetune"]:
            assert not active & FINETUNE_ONLY, config  # no fine-tuning hyperparameter without fine-tuning
            assert config["probes"] != "none"  # something predicts
        else:
            assert FINETUNE_ONLY <= active
        if config["backbone"] == "scratch_cnn":
            assert "pretrained" not in active and config["pretrained"] is False  # never pretrained
        assert ("probe_examples" in active) == ("embedding" in config["probes"])


def test_the_space_is_built_for_the_datasets_shape() -> None:
    from finetune.config import DataShape, space_for

    full = load_space()
    video_options = {"frames_per_clip", "temporal"}
    image = space_for(DataShape(video=False, channels=3), full)
    grey = space_for(DataShape(video=False, channels=1), full)
    video = space_for(DataShape(video=True, channels=3), full)
    rgba = space_for(DataShape(video=False, channels=4), full)
    assert set(image.keys()) == set(grey.keys()) == HYPERPARAMETERS - video_options - {"channel_adapter"}
    assert set(video.keys()) == HYPERPARAMETERS - {"channel_adapter"}
    assert set(rgba.keys()) == HYPERPARAMETERS - video_options
    assert len(image.conditions) == len(full.conditions) and image.forbidden_clauses
    assert set(space_for(None, full).keys()) == HYPERPARAMETERS
    for sample in image.sample_configuration(30):  # completed over the whole space for the learner
        config = validate_config(dict(sample), full)
        assert config["frames_per_clip"] == 4 and config["temporal"] == "average"
    assert space_for({"video": True, "channels": 1}, full).meta["data"] == {"video": True, "channels": 1}


def test_data_shape_reads_the_datasets_metadata(written) -> None:
    from finetune.config import DataShape, data_shape

    assert data_shape(written["rgb"].root) == DataShape(video=False, channels=3)
    assert data_shape(written["video"].root) == DataShape(video=True, channels=3)
    assert data_shape(written["rgba"].root) == DataShape(video=False, channels=4)


def test_older_configurations_read_back_unchanged() -> None:
    """The committed incumbents and the grid were written before the conditions: values given for
    inactive hyperparameters (optimizer of a probes-only configuration, pretrained: true of
    scratch_cnn) are kept, so that they validate and run as they did."""
    from finetune.grid import GRID, grid_config

    old = {"backbone": "scratch_cnn", "pretrained": True, "finetune": True, "optimizer": "SGD"}
    assert validate_config(old) == {**default_config(), **old}
    probes_only = {"finetune": False, "optimizer": "SGD", "learning_rate": 0.3, "tau": 2.0}
    assert validate_config(probes_only) == {**default_config(), **probes_only}
    # a missing inactive value takes its when_inactive value (scratch_cnn: not pretrained)
    assert validate_config({"backbone": "scratch_cnn"})["pretrained"] is False
    for name in GRID:
        config = grid_config(name)
        assert set(config) == HYPERPARAMETERS and validate_config(config) == config
        assert {k: config[k] for k in NEW_KNOBS} == NEW_KNOBS, name
    # written before train_layers and probe_share: every value reads back as written, and the two
    # knobs are filled with the values that do what the learner did before them
    portfolio = REPO / "portfolio" / "default" / "portfolio.json"
    if portfolio.is_file():
        for inc in json.loads(portfolio.read_text())["incumbents"]:
            assert validate_config(inc["config"]) == {**inc["config"], **NEW_KNOBS}, inc["dataset"]


def test_train_layers_and_probe_share_are_inactive_where_the_learner_ignores_them() -> None:
    """train_layers matters only for a pretrained network that is fine-tuned, probe_share only for
    probes followed by fine-tuning; where inactive they hold all and 1.0 (what the learner did before)."""
    from finetune.config import active_hyperparameters

    def active(config: dict) -> set[str]:
        return set(active_hyperparameters(validate_config(config)))

    assert {"train_layers", "probe_share"} <= active({"train_layers": "head", "probe_share": 0.1})
    probes_only = validate_config({"finetune": False})
    assert not {"train_layers", "probe_share"} & active(probes_only)
    assert {k: probes_only[k] for k in NEW_KNOBS} == NEW_KNOBS
    scratch = validate_config({"backbone": "scratch_cnn"})
    assert "train_layers" not in active(scratch) and scratch["train_layers"] == "all"
    assert "probe_share" in active(scratch)  # its probes still precede its fine-tuning
    assert "train_layers" not in active({"pretrained": False})  # from random weights: everything trains
    assert "probe_share" not in active({"probes": "none"})
    assert default_config()["train_layers"] == "all" and default_config()["probe_share"] == 1.0
    with pytest.raises(ConfigError) as info:
        validate_config({"train_layers": "backbone"})
    assert info.value.field == "train_layers" and "last_blocks" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_config({"probe_share": 0.3})
    assert info.value.field == "probe_share" and "0.35" in str(info.value)
    assert validate_config({"probe_share": 1})["probe_share"] == 1.0


def test_a_configuration_that_never_predicts_is_refused() -> None:
    with pytest.raises(ConfigError, match="forbidden"):
        validate_config({"probes": "none", "finetune": False})
    assert validate_config({"probes": "none"})["finetune"] is True


@pytest.mark.parametrize(("extra", "top", "match"), [
    pytest.param("    active_when: {nothing: true}\n", "", "names 'nothing'", id="unknown-parent"),
    pytest.param("    active_when: {tau: 2.0}\n", "", "not another hyperparameter", id="self-parent"),
    pytest.param("    active_when: {flag: maybe}\n", "", "flag", id="bad-parent-value"),
    pytest.param("    when_inactive: 2.0\n", "", "without 'active_when'", id="when-inactive-alone"),
    pytest.param("    active_when: {flag: true}\n    when_inactive: 99.0\n", "", "bad 'when_inactive'",
                 id="when-inactive-out-of-range"),
    pytest.param("    only_for: audio\n", "", "'only_for' must be one of", id="bad-only-for"),
    pytest.param("", "forbidden:\n  - {nothing: 1}\n", "names 'nothing'", id="forbidden-unknown"),
    pytest.param("", "forbidden: {flag: true}\n", "must be a list", id="forbidden-not-a-list"),
])
def test_malformed_conditions_name_the_problem(tmp_path: Path, extra: str, top: str, match: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("name: c\nhyperparameters:\n  flag:\n    type: categorical\n    choices: [false, true]\n"
                    "    default: true\n    doc: A flag.\n" + _GOOD_ENTRY + extra + top)
    with pytest.raises(SpaceError, match=match) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_a_small_conditional_space_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("name: c\nhyperparameters:\n  flag:\n    type: categorical\n    choices: [false, true]\n"
                    "    default: true\n    doc: A flag.\n" + _GOOD_ENTRY
                    + "    active_when: {flag: true}\n    when_inactive: 1.0\n"
                    + "forbidden:\n  - {flag: true, tau: 16.0}\n")
    space = load_space(path)
    assert [str(c) for c in space.conditions] == ["tau | flag == True"]
    assert validate_config({"flag": False}, space) == {"flag": False, "tau": 1.0}
    assert validate_config({"flag": True}, space) == {"flag": True, "tau": 8.0}
    with pytest.raises(ConfigError, match="forbidden"):
        validate_config({"tau": 16.0}, space)
