"""``metadata.textproto``: the description of one subset of an AutoDL dataset.

:class:`AutoDLMetadata` parses the text-format ``DataSpecification`` completely (every
field, the three string-to-index maps, ``-1`` for sizes that vary) and offers the
method names of the organizers' ``AutoDLMetadata`` (``get_output_size``,
``get_tensor_shape``, ``size``, ...), so that a model written for the challenge runs
unchanged on it. :func:`format_metadata` writes the file in the organizers' field order
(``is_sequence, sample_count, sequence_size, output_dim, matrix_spec, maps``): some
readers, the 2019 winner's among them, take ``sample_count`` from the first lines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_encoding, text_format

from autodl.errors import FormatError
from autodl.proto import DataSpecification

DENSE, SPARSE, COMPRESSED = "DENSE", "SPARSE", "COMPRESSED"
_FORMATS = (DENSE, SPARSE, COMPRESSED)
METADATA_FILENAME = "metadata.textproto"


@dataclass(frozen=True)
class MatrixSpec:
    """One bundle (input modality) of an example: ``row_count x col_count x num_channels``.

    ``-1`` in ``row_count``, ``col_count`` or ``num_channels`` means the size varies from
    example to example (``num_channels=-1`` means "not given").
    """

    row_count: int = -1
    col_count: int = -1
    num_channels: int = -1
    format: str = COMPRESSED
    is_sequence_col: bool = False
    is_sequence_row: bool = False
    has_locality_col: bool = True
    has_locality_row: bool = True
    is_sparse: bool = False

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"format={self.format!r}: expected one of {_FORMATS}")


@dataclass(frozen=True)
class AutoDLMetadata:
    """The metadata of one subset (``train``, ``test`` or ``unlabelled``) of a dataset.

    Offers the organizers' accessor names; ``dataset_name`` is the subset folder, as in
    the organizers' class.
    """

    sample_count: int
    output_dim: int
    matrix_spec: tuple[MatrixSpec, ...]
    is_sequence: bool = False
    sequence_size: int = 1
    label_to_index_map: dict[str, int] = field(default_factory=dict)
    feature_to_index_map: dict[str, int] = field(default_factory=dict)
    channel_to_index_map: dict[str, int] = field(default_factory=dict)
    dataset_name: str = ""

    # --- the organizers' interface -------------------------------------------------
    def get_dataset_name(self) -> str:
        return self.dataset_name

    def is_compressed(self, bundle_index: int = 0) -> bool:
        return self.matrix_spec[bundle_index].format == COMPRESSED

    def is_sparse(self, bundle_index: int = 0) -> bool:
        return self.matrix_spec[bundle_index].format == SPARSE

    def get_bundle_size(self) -> int:
        return len(self.matrix_spec)

    def get_output_size(self) -> int:
        return self.output_dim

    def get_matrix_size(self, bundle_index: int = 0) -> tuple[int, int]:
        spec = self.matrix_spec[bundle_index]
        return spec.row_count, spec.col_count

    def get_num_channels(self, bundle_index: int = 0) -> int:
        """Channels of the bundle; an unknown count is 3 for compressed data, 1 otherwise."""
        n = self.matrix_spec[bundle_index].num_channels
        if n == -1:
            return 3 if self.is_compressed(bundle_index) else 1
        return n

    def get_tensor_size(self, bundle_index: int = 0) -> tuple[int, int, int]:
        rows, cols = self.get_matrix_size(bundle_index)
        return rows, cols, self.get_num_channels(bundle_index)

    def get_tensor_shape(self, bundle_index: int = 0) -> tuple[int, int, int, int]:
        """``(T, H, W, C)``; ``-1`` where the size varies."""
        rows, cols = self.get_matrix_size(bundle_index)
        return self.sequence_size, rows, cols, self.get_num_channels(bundle_index)

    def get_sequence_size(self) -> int:
        return self.sequence_size

    def get_num_examples(self) -> int:
        return self.sample_count

    def size(self) -> int:
        return self.sample_count

    def get_label_to_index_map(self) -> dict[str, int]:
        return dict(self.label_to_index_map)

    def get_feature_to_index_map(self) -> dict[str, int]:
        return dict(self.feature_to_index_map)

    def get_channel_to_index_map(self) -> dict[str, int]:
        return dict(self.channel_to_index_map)

    # --- conveniences ----------------------------------------------------------------
    @property
    def format(self) -> str:
        return self.matrix_spec[0].format

    def replace(self, **changes: Any) -> AutoDLMetadata:
        return dataclasses.replace(self, **changes)

    def label_names(self) -> list[str] | None:
        """Class names in index order, if the label map covers every class."""
        if len(self.label_to_index_map) != self.output_dim:
            return None
        names = sorted(self.label_to_index_map.items(), key=lambda kv: kv[1])
        return [n for n, _ in names]


_REQUIRED = ("sample_count", "output_dim")


def parse_metadata(text: str, path: str | Path = METADATA_FILENAME,
                   dataset_name: str | None = None) -> AutoDLMetadata:
    """Parse the text of a ``metadata.textproto``.

    Raises
    ------
    FormatError
        The text is not a valid ``DataSpecification``, a required field is missing, or a
        value is out of range. The message names the file, the field and what was expected.
    """
    msg = DataSpecification()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as exc:
        raise FormatError(path, f"malformed metadata (line:column {exc}); expected the text "
                                f"format of autodl.DataSpecification") from None
    for name in _REQUIRED:
        if not msg.HasField(name):
            raise FormatError(path, "missing; every metadata.textproto must give it", field=name)
    if len(msg.matrix_spec) == 0:
        raise FormatError(path, "missing; expected at least one matrix_spec block", field="matrix_spec")
    if msg.sample_count < 0:
        raise FormatError(path, f"{msg.sample_count} is negative; expected a count >= 0",
                          field="sample_count")
    if msg.output_dim < 1:
        raise FormatError(path, f"{msg.output_dim}; expected the number of classes (>= 1)",
                          field="output_dim")
    if msg.sequence_size == 0 or msg.sequence_size < -1:
        raise FormatError(path, f"{msg.sequence_size}; expected a frame count >= 1 or -1 (varies)",
                          field="sequence_size")
    specs = []
    fmt_names = {0: DENSE, 1: SPARSE, 2: COMPRESSED}
    for i, s in enumerate(msg.matrix_spec):
        for name in ("row_count", "col_count", "num_channels"):
            value = getattr(s, name)
            if s.HasField(name) and (value == 0 or value < -1):  # absent: -1 (varies)
                raise FormatError(path, f"{value}; expected a size >= 1 or -1 (varies)",
                                  field=f"matrix_spec[{i}].{name}")
        specs.append(MatrixSpec(
            row_count=s.row_count if s.HasField("row_count") else -1,
            col_count=s.col_count if s.HasField("col_count") else -1,
            num_channels=s.num_channels,
            format=fmt_names[s.format],
            is_sequence_col=s.is_sequence_col, is_sequence_row=s.is_sequence_row,
            has_locality_col=s.has_locality_col, has_locality_row=s.has_locality_row,
            is_sparse=s.is_sparse))
    label_map = dict(msg.label_to_index_map)
    for name, index in label_map.items():
        if not 0 <= index < msg.output_dim:
            raise FormatError(path, f"label {name!r} has index {index}; expected 0 <= index < "
                                    f"output_dim={msg.output_dim}", field="label_to_index_map")
    return AutoDLMetadata(
        sample_count=msg.sample_count, output_dim=msg.output_dim, matrix_spec=tuple(specs),
        is_sequence=msg.is_sequence, sequence_size=msg.sequence_size,
        label_to_index_map=label_map, feature_to_index_map=dict(msg.feature_to_index_map),
        channel_to_index_map=dict(msg.channel_to_index_map),
        dataset_name=str(dataset_name if dataset_name is not None else Path(path).parent))


def read_metadata(subset_dir: str | Path) -> AutoDLMetadata:
    """Read ``<subset_dir>/metadata.textproto``."""
    subset_dir = Path(subset_dir)
    path = subset_dir / METADATA_FILENAME
    if not path.is_file():
        raise FormatError(path, "not found; every subset folder (train/, test/) needs one")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError(path, "not UTF-8 text; expected a text-format DataSpecification") from None
    return parse_metadata(text, path, dataset_name=str(subset_dir))


def _quote(s: str) -> str:
    return "'" + text_encoding.CEscape(s.encode("utf-8"), as_utf8=True) + "'"


def _b(v: bool) -> str:
    return "true" if v else "false"


def format_metadata(meta: AutoDLMetadata) -> str:
    """The ``metadata.textproto`` text of ``meta``, in the organizers' field order."""
    lines = [f"is_sequence: {_b(meta.is_sequence)}",
             f"sample_count: {meta.sample_count}",
             f"sequence_size: {meta.sequence_size}",
             f"output_dim: {meta.output_dim}"]
    for s in meta.matrix_spec:
        lines += ["matrix_spec {", f"  col_count: {s.col_count}", f"  row_count: {s.row_count}"]
        if s.num_channels != -1:
            lines.append(f"  num_channels: {s.num_channels}")
        lines += [f"  is_sequence_col: {_b(s.is_sequence_col)}",
                  f"  is_sequence_row: {_b(s.is_sequence_row)}",
                  f"  has_locality_col: {_b(s.has_locality_col)}",
                  f"  has_locality_row: {_b(s.has_locality_row)}",
                  f"  format: {s.format}"]
        if s.is_sparse:  # deprecated; written only when set, as the organizers' files omit it
            lines.append("  is_sparse: true")
        lines.append("}")
    for map_name in ("label_to_index_map", "feature_to_index_map", "channel_to_index_map"):
        for key, value in sorted(getattr(meta, map_name).items(), key=lambda kv: (kv[1], kv[0])):
            lines += [f"{map_name} {{", f"  key: {_quote(key)}", f"  value: {value}", "}"]
    return "\n".join(lines) + "\n"


def write_metadata(meta: AutoDLMetadata, subset_dir: str | Path) -> Path:
    path = Path(subset_dir) / METADATA_FILENAME
    path.write_text(format_metadata(meta), encoding="utf-8")
    return path
