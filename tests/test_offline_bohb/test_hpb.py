"""hpbandster's known quirks, each handled in offline_bohb.hpb (no run started here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from offline_bohb import hpb
from offline_bohb.hpb import (
    BOHBError,
    bracket_sizes,
    decode_config,
    encode_config,
    encode_space,
    interface_address,
    read_credentials,
    start_nameserver,
)

TINY_SPACE = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"


def _roundtrip(value):
    """What a worker reads back of ``value`` sent through Pyro4's serpent serializer."""
    import Pyro4.util

    s = Pyro4.util.get_serializer("serpent")
    return s.loadsCall(s.dumpsCall("obj", "compute", (value,), {}))[2][0]


def test_numpy_scalars_cross_serpent_as_python_values():
    # quirk 1: numpy >= 2 budgets and ConfigSpace 1.x values; without the fix serpent refuses
    # numpy.str_ and writes np.float64 as text that cannot be read back
    sent = {"budget": np.float64(1 / 3), "optimizer": np.str_("SGD"), "batch_size": np.int64(32),
            "flag": np.bool_(True), "vector": np.arange(3), "loss": float("inf")}
    got = _roundtrip(sent)
    assert got == {"budget": 1 / 3, "optimizer": "SGD", "batch_size": 32, "flag": True, "vector": [0, 1, 2],
                   "loss": float("inf")}
    assert type(got["budget"]) is float and type(got["optimizer"]) is str and type(got["batch_size"]) is int


def test_without_the_fix_serpent_fails_as_described(monkeypatch):
    import serpent

    monkeypatch.setattr(serpent, "_special_classes_registry", {})
    with pytest.raises(TypeError, match="numpy.str_"):
        _roundtrip({"optimizer": np.str_("SGD")})
    hpb.install_serializers()
    assert _roundtrip({"optimizer": np.str_("SGD")}) == {"optimizer": "SGD"}


def test_ordinal_hyperparameters_are_encoded_for_bohb():
    # quirk 2: hpbandster's BOHB refuses ordinal hyperparameters
    from hpbandster.optimizers.config_generators.bohb import BOHB as CG_BOHB

    from finetune.config import load_space, runnable_space

    space = runnable_space(load_space())
    with pytest.raises(RuntimeError, match="ordinal"):
        CG_BOHB(configspace=space)
    encoded = encode_space(space, seed=0)
    CG_BOHB(configspace=encoded)  # accepted
    assert encoded["batch_size"].lower == 0 and encoded["batch_size"].upper == 3
    assert encoded["batch_size"].default_value == [16, 32, 64, 128].index(space["batch_size"].default_value)
    assert len(list(encoded.forbidden_clauses)) == len(list(space.forbidden_clauses))
    assert sorted(map(str, encoded.conditions)) == sorted(map(str, space.conditions))  # the same conditions
    fine_tuned = 0
    for _ in range(20):
        sample = dict(encoded.sample_configuration())
        config = decode_config(space, sample)
        if not config["finetune"]:  # batch_size is a fine-tuning hyperparameter: inactive
            assert "batch_size" not in config
            continue
        fine_tuned += 1
        assert config["batch_size"] in (16, 32, 64, 128) and type(config["batch_size"]) is int
        assert type(config["backbone"]) is str
        assert encode_config(space, config) == hpb.plain(sample)
        assert not (config["backbone"] == "resnet18" and config["pretrained"] and
                    "resnet18" in str(list(space.forbidden_clauses)))
    assert fine_tuned


def test_daemons_bind_to_loopback_unless_an_interface_is_named():
    # quirk 3: on a cluster, name the interface; by default nothing listens beyond this node
    assert interface_address(None) == "127.0.0.1"
    assert interface_address("lo") == "127.0.0.1"
    with pytest.raises(BOHBError, match="no-such-nic"):
        interface_address("no-such-nic")


def test_nameserver_credentials_are_json_in_the_shared_folder(tmp_path: Path):
    ns = start_nameserver("r1", tmp_path)
    try:
        path = tmp_path / "nameserver-r1.json"
        data = json.loads(path.read_text())
        assert data["host"] == "127.0.0.1" and data["run_id"] == "r1"
        assert read_credentials(tmp_path, "r1") == (ns.host, ns.port)
        assert not list(tmp_path.glob("*.pkl"))
        import Pyro4

        with Pyro4.locateNS(host=ns.host, port=ns.port) as proxy:
            proxy.ping()
    finally:
        ns.shutdown()
    assert not path.exists()
    with pytest.raises(BOHBError, match="no nameserver credentials for run 'r1'"):
        read_credentials(tmp_path, "r1")
    path.write_text(json.dumps({"format": hpb.CREDENTIALS_FORMAT, "run_id": "other", "host": "h", "port": 1}))
    with pytest.raises(BOHBError, match="expected run id 'r1'"):
        read_credentials(tmp_path, "r1")


def test_bracket_sizes_are_hpbandsters():
    # min = max / 9, eta = 3 (the Freiburg runs): brackets of 9-3-1, 3-1 and 3 configurations
    assert bracket_sizes(1 / 9, 1.0, 3, 3) == [[(9, pytest.approx(1 / 9)), (3, pytest.approx(1 / 3)), (1, 1.0)],
                                               [(3, pytest.approx(1 / 3)), (1, 1.0)], [(3, 1.0)]]


def test_crashed_trials_warm_start_bohbs_model_as_infinite_loss():
    # quirk 5: hpbandster's own warm start fails on a crashed trial's loss of None; the
    # replayed jobs hand BOHB +inf instead, which its model accepts
    from hpbandster.core.dispatcher import Job
    from hpbandster.optimizers.config_generators.bohb import BOHB as CG_BOHB

    from finetune.config import load_space

    space = encode_space(load_space(TINY_SPACE), seed=0)
    cg = CG_BOHB(configspace=space, min_points_in_model=5)
    for i in range(24):
        config = hpb.plain(dict(space.sample_configuration()))
        job = Job((0, 0, i), config=config, budget=1.0)
        job.result = {"loss": float("inf") if i % 3 == 0 else -i / 10, "info": {}}
        cg.new_result(job)
    assert 1.0 in cg.kde_models
    config, info = cg.get_config(1.0)
    assert set(config) == {"optimizer", "batch_size", "learning_rate", "probes"}


def test_a_space_can_be_a_function_and_the_data_any_folder_for_other_objectives(tmp_path):
    """Other objectives (the selectors' hyperparameters) reuse the run machinery: the space is
    ``module:function[:argument]`` and the data a folder that is not an AutoDL dataset."""
    import ConfigSpace as CS

    from offline_bohb.run import BOHBError, RunFolder, RunSpec, files_fingerprint, resolve_space

    space = resolve_space("finetune.config:load_space")  # called without an argument
    assert isinstance(space, CS.ConfigurationSpace) and "backbone" in list(space.keys())
    with pytest.raises(BOHBError, match="cannot be imported"):
        resolve_space("no_such_module_here:space")

    features = tmp_path / "features"
    features.mkdir()
    (features / "a.npz").write_bytes(b"12345")
    fp = files_fingerprint(features)
    spec = RunSpec(dataset=str(features), space="finetune.config:load_space",
                   objective="offline_bohb.synthetic:synthetic_evaluator", iterations=1)
    record, resumed = RunFolder(tmp_path / "run").start(spec)
    assert not resumed and record["dataset"] == {"name": "features", "path": str(features.resolve()),
                                                 "fingerprint": fp}
    assert record["space"]["path"] == "finetune.config:load_space"
    (features / "a.npz").write_bytes(b"123456")  # the data changed: a resume is refused
    with pytest.raises(BOHBError, match="dataset.fingerprint"):
        RunFolder(tmp_path / "run").start(spec)
    # the fine-tuning objective still needs an AutoDL dataset
    from autodl.errors import FormatError
    with pytest.raises(FormatError):
        RunSpec(dataset=str(features)).record()
