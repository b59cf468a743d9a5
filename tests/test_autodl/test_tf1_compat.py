"""TensorFlow 1 compatibility (:mod:`autodl.tf1_compat`): what a TF 1 source uses, what cannot
be supplied, and TensorFlow 1 mode in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from autodl.tf1_compat import REMOVED_APIS, find_unsupported, tensorflow_references

SOURCE = textwrap.dedent("""\
    import numpy as np
    import tensorflow as tf
    import tensorflow.compat.v1 as v1
    from tensorflow.python.client import device_lib
    from tensorflow.contrib import slim
    from tensorflow import estimator as est

    def model_fn(x):
        h = tf.layers.dense(x, 3)
        config = tf.ConfigProto(log_device_placement=False)
        with v1.Session(config=config) as sess:
            pass
        return tf.estimator.EstimatorSpec(mode=None), est.RunConfig(), tf.no_such_api_at_all(h)
    """)


def test_the_tensorflow_names_a_source_uses_are_found_whatever_the_alias():
    refs: dict[str, int] = {}
    for name, line in tensorflow_references(SOURCE):  # in the order they appear
        refs.setdefault(name, line)
    assert refs["tf.layers.dense"] == 9
    assert refs["tf.ConfigProto"] == 10
    assert refs["tf.Session"] == 11  # import tensorflow.compat.v1 as v1: v1.Session is tf.Session
    assert refs["tensorflow.python.client.device_lib"] == 4
    assert refs["tf.contrib.slim"] == 5
    assert refs["tf.estimator.RunConfig"] == 13 and refs["tf.estimator"] == 6
    assert "np.zeros" not in refs and not any(r.startswith("np") for r in refs)


def test_without_tensorflow_only_the_apis_known_to_be_gone_are_refused():
    found = find_unsupported(SOURCE)
    assert [(u.api, u.line) for u in found] == [("tf.contrib", 5), ("tf.estimator", 6)]
    assert found[1].reason == REMOVED_APIS["estimator"] and "2.16" in found[1].reason
    assert found[1].describe().startswith("tf.estimator (line 6): removed in TensorFlow 2.16")


def test_against_the_installed_tf_compat_v1_what_it_lacks_is_refused_too():
    from autodl.dataset import configure_tensorflow

    v1 = configure_tensorflow().compat.v1
    found = {u.api: u for u in find_unsupported(SOURCE, v1)}
    assert set(found) >= {"tf.contrib", "tf.estimator", "tf.no_such_api_at_all"}
    assert "tf.ConfigProto" not in found and "tf.Session" not in found
    assert not any(api.startswith("tensorflow.python") for api in found)  # device_lib exists
    assert "tf.compat.v1" in found["tf.no_such_api_at_all"].reason
    if "tf.layers.dense" in found:  # Keras 3 (TensorFlow >= 2.16 without tf-keras) has no TF 1 layers
        assert "Keras 3" in found["tf.layers.dense"].reason


def test_a_source_that_is_not_python_raises_syntax_error():
    with pytest.raises(SyntaxError):
        find_unsupported("def broken(:\n")


TF1_PROGRAM = textwrap.dedent("""\
    from autodl.dataset import configure_tensorflow
    from autodl.tf1_compat import enable_tf1_mode, tf1_mode_enabled
    configure_tensorflow()
    assert not tf1_mode_enabled()
    v1 = enable_tf1_mode()
    assert enable_tf1_mode() is v1 and tf1_mode_enabled()
    import tensorflow as tf
    assert tf is v1 and not tf.executing_eagerly()
    dataset = tf.data.Dataset.from_tensor_slices(([[1.0, 2.0], [3.0, 4.0]], [0, 1]))
    x, y = dataset.make_one_shot_iterator().get_next()
    unknown = tf.placeholder(tf.float32, [None, 2])
    assert not unknown.shape[0] > 0          # TF 1 shapes: an unknown Dimension compares (TF 2: TypeError)
    seen = []
    with tf.Session(config=tf.ConfigProto(log_device_placement=False)) as sess:
        while True:
            try:
                seen.append(int(sess.run(y)))
            except tf.errors.OutOfRangeError:
                break
    with tf.Graph().as_default():            # an iterator made in another graph: shapes readable
        other = dataset.make_one_shot_iterator().get_next()
    print("OK", seen, other[0].shape.as_list())
    """)


def test_tf1_mode_runs_tensorflow_1_code_unchanged_in_its_own_process():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", TF1_PROGRAM], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "OK [0, 1] [2]"
