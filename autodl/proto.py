"""The protocol buffer messages of the AutoDL format, built without TensorFlow.

Two schemas are needed to read and write an AutoDL dataset:

* ``autodl.DataSpecification`` / ``autodl.MatrixSpec``: the text-format
  ``metadata.textproto`` of each subset (the organizers' ``data.proto``).
* ``tensorflow.SequenceExample`` and the ``Feature`` messages it is made of: one record
  of a ``.tfrecord`` file.

The descriptors are declared here in Python and registered in a private descriptor pool,
so that reading a dataset needs only the ``protobuf`` runtime (fast, no TensorFlow import)
and cannot clash with TensorFlow's own registration of ``tensorflow.SequenceExample``
when both are loaded in one process.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED


def _field(msg, name: str, number: int, ftype: int, label: int = _OPT, type_name: str = "",
           default: str | None = None, packed: bool | None = None) -> None:
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if default is not None:
        f.default_value = default
    if packed is not None:
        f.options.packed = packed


def _map_field(msg, name: str, number: int, value_type: int, value_type_name: str = "",
               package: str = "") -> None:
    """Declare ``map<string, V> name = number`` as protoc does: a nested entry message."""
    entry_name = "".join(p.capitalize() for p in name.split("_")) + "Entry"
    entry = msg.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, value_type, type_name=value_type_name)
    _field(msg, name, number, _F.TYPE_MESSAGE, _REP, type_name=f".{package}.{msg.name}.{entry_name}")


def _data_spec_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="autodl/data.proto", package="autodl", syntax="proto2")
    ms = fd.message_type.add(name="MatrixSpec")
    fmt = ms.enum_type.add(name="Format")
    for i, n in enumerate(["DENSE", "SPARSE", "COMPRESSED"]):
        fmt.value.add(name=n, number=i)
    _field(ms, "col_count", 1, _F.TYPE_INT32)
    _field(ms, "row_count", 2, _F.TYPE_INT32)
    _field(ms, "is_sequence_col", 3, _F.TYPE_BOOL)
    _field(ms, "is_sequence_row", 4, _F.TYPE_BOOL)
    _field(ms, "has_locality_col", 5, _F.TYPE_BOOL)
    _field(ms, "has_locality_row", 6, _F.TYPE_BOOL)
    _field(ms, "format", 7, _F.TYPE_ENUM, type_name=".autodl.MatrixSpec.Format", default="DENSE")
    _field(ms, "is_sparse", 8, _F.TYPE_BOOL)
    _field(ms, "num_channels", 9, _F.TYPE_INT32, default="-1")

    ds = fd.message_type.add(name="DataSpecification")
    _field(ds, "is_sequence", 1, _F.TYPE_BOOL)
    _field(ds, "sample_count", 2, _F.TYPE_INT64)
    _field(ds, "sequence_size", 3, _F.TYPE_INT32, default="1")
    _field(ds, "output_dim", 4, _F.TYPE_INT32)
    _field(ds, "matrix_spec", 5, _F.TYPE_MESSAGE, _REP, type_name=".autodl.MatrixSpec")
    _map_field(ds, "label_to_index_map", 6, _F.TYPE_INT32, package="autodl")
    _map_field(ds, "feature_to_index_map", 7, _F.TYPE_INT32, package="autodl")
    _map_field(ds, "channel_to_index_map", 8, _F.TYPE_INT32, package="autodl")
    return fd


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    pkg = "autodl_meta.tfexample"
    fd = descriptor_pb2.FileDescriptorProto(name="autodl/tfexample.proto", package=pkg, syntax="proto3")
    bl = fd.message_type.add(name="BytesList")
    _field(bl, "value", 1, _F.TYPE_BYTES, _REP)
    fl = fd.message_type.add(name="FloatList")
    _field(fl, "value", 1, _F.TYPE_FLOAT, _REP, packed=True)
    il = fd.message_type.add(name="Int64List")
    _field(il, "value", 1, _F.TYPE_INT64, _REP, packed=True)
    feat = fd.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    for name, num, tname in [("bytes_list", 1, "BytesList"), ("float_list", 2, "FloatList"),
                             ("int64_list", 3, "Int64List")]:
        _field(feat, name, num, _F.TYPE_MESSAGE, type_name=f".{pkg}.{tname}")
        feat.field[-1].oneof_index = 0
    feats = fd.message_type.add(name="Features")
    _map_field(feats, "feature", 1, _F.TYPE_MESSAGE, f".{pkg}.Feature", package=pkg)
    flist = fd.message_type.add(name="FeatureList")
    _field(flist, "feature", 1, _F.TYPE_MESSAGE, _REP, type_name=f".{pkg}.Feature")
    flists = fd.message_type.add(name="FeatureLists")
    _map_field(flists, "feature_list", 1, _F.TYPE_MESSAGE, f".{pkg}.FeatureList", package=pkg)
    se = fd.message_type.add(name="SequenceExample")
    _field(se, "context", 1, _F.TYPE_MESSAGE, type_name=f".{pkg}.Features")
    _field(se, "feature_lists", 2, _F.TYPE_MESSAGE, type_name=f".{pkg}.FeatureLists")
    return fd


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_data_spec_file())
    pool.Add(_example_file())
    return pool


@cache
def message_class(full_name: str) -> Any:
    """The generated message class for ``full_name`` (e.g. ``autodl.DataSpecification``)."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def DataSpecification() -> Any:  # noqa: N802 - mirrors the proto's name
    """A new, empty ``autodl.DataSpecification`` message."""
    return message_class("autodl.DataSpecification")()


def SequenceExample() -> Any:  # noqa: N802
    """A new, empty ``SequenceExample`` message (wire-compatible with TensorFlow's)."""
    return message_class("autodl_meta.tfexample.SequenceExample")()
