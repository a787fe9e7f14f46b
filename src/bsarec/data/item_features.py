"""Item side information: categorical fields (single- or multi-valued) and dense vectors, aligned to a dataset's
internal item ids, read from three kinds of file (docs/item_features.md):

- the S3-Rec attribute format, a JSON object {"item id": [attribute ids, ...]} (repeats allowed): one
  categorical field, `attributes` unless named (`FIELD=FILE`);
- an item table (CSV, TSV, Parquet) keyed by original item id: text columns are categorical fields (a Parquet
  list column, text joined by `multi_separator`, or text written as a list `[a, b]`, is multi-valued), numeric
  columns are one-number dense fields (standardised over the catalogue), list-of-float columns are dense vectors;
  each field is named after its column;
- dense vectors from NumPy: `NAME.npy` (items x dimension) with the ids, one per line, in `NAME.ids.txt`: one
  dense field, `NAME` unless named (`FIELD=FILE`);
- a directory of features saved by `bsarec data prepare --item-features` (or a run's `item_features`).

A field's name is its identity: a run saves its fields by name, and a file of new items must give the same
fields (matched by name, read as the run read them) or be refused.

Items are matched through the dataset's id map. Rows for ids outside the catalogue are counted in the report (a
file may describe more items than were interacted with). An item without a value gets the field's explicit
*missing* code (categorical) or a false `present` flag (dense), never a silent zero that looks like a category.
Row 0 (padding) has no features at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bsarec.data.dataset import SequenceDataset
from bsarec.data.interaction_log import detect_separator
from bsarec.data.registry import locate_attributes
from bsarec.errors import ConfigError, DataError
from bsarec.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger("bsarec")
MISSING = 0  # the code of "no value" in every categorical field; codes of values start at 1
ARRAYS_FILE = "item_features.npz"
FIELDS_FILE = "item_features.json"
ID_COLUMNS = ("item_id", "item", "itemid", "item_idx", "id")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None, ".parquet": None}
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# the largest magnitude of a dense vector's entry and of a new item's standardised number: beyond it the model's
# float32 arithmetic (squares in layer norms, dot products of scores) is no longer safe, and no real measurement
# lies a million standard deviations from the others
VALUE_LIMIT = 1e6
# an integer column with at most this many distinct values is probably codes (a warning says so)
FEW_CODES = 50


def split_field_name(spec: str | Path) -> tuple[str | None, Path]:
    """`FIELD=FILE` names the field of a one-field file (.json, .npy); anything else is a path (a path that
    exists is never split, whatever it holds)."""
    text = str(spec)
    name, sep, rest = text.partition("=")
    if sep and rest and FIELD_NAME.fullmatch(name) and not Path(text).exists():
        return name, Path(rest)
    return None, Path(text)


@dataclass
class CategoricalField:
    """Codes per item as a CSR list: item i holds codes[offsets[i]:offsets[i+1]] (value codes >= 1, or the
    single code MISSING when it has no value; row 0 holds none). vocabulary[c - 1] is the value of code c."""

    name: str
    vocabulary: list[str]
    offsets: np.ndarray
    codes: np.ndarray

    def values_of(self, item: int) -> list[str]:
        return [self.vocabulary[c - 1] for c in self.codes[self.offsets[item] : self.offsets[item + 1]] if c]


@dataclass
class DenseField:
    """One vector per item (items x dimension, float32); `present[i]` is false where item i has no vector (its
    row is zeros and the model uses the field's learned missing vector instead). `shift`/`scale` standardise
    raw values (new items are transformed the same way)."""

    name: str
    vectors: np.ndarray
    present: np.ndarray
    shift: float = 0.0
    scale: float = 1.0
    standardised: bool = False  # a numeric column's number (True) or a vector used as it is (False)


@dataclass
class ItemFeatures:
    n_items: int
    categorical: list[CategoricalField] = field(default_factory=list)
    dense: list[DenseField] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    # the fingerprint of the item ids the rows follow (SequenceDataset.item_ids_fingerprint); None: not known
    catalogue: str | None = None

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.categorical] + [f.name for f in self.dense]

    def described_items(self) -> np.ndarray:
        """Bool (n_items,): the items with at least one value in some field."""
        described = np.zeros(self.n_items, dtype=bool)
        for f in self.categorical:
            lengths = np.diff(f.offsets)
            starts = f.offsets[:-1]
            has_value = np.zeros(self.n_items, dtype=bool)
            nonempty = lengths > 0
            has_value[nonempty] = f.codes[starts[nonempty]] != MISSING
            described |= has_value
        for f in self.dense:
            described |= f.present
        described[0] = False
        return described

    def merged(self, other: ItemFeatures) -> ItemFeatures:
        clash = sorted(set(self.names) & set(other.names))
        if clash:
            raise DataError(f"item features: field {clash[0]!r} is given by two files; rename one column")
        return ItemFeatures(
            self.n_items,
            self.categorical + other.categorical,
            self.dense + other.dense,
            {"files": self.report.get("files", []) + other.report.get("files", [])},
            self.catalogue if self.catalogue == other.catalogue else None,
        )

    def matching(self, values: dict[str, list[str]]) -> np.ndarray:
        """Bool (n_items,): the items that hold, for every named field, at least one of the given values."""
        keep = np.ones(self.n_items, dtype=bool)
        by_name = {f.name: f for f in self.categorical}
        for name, wanted in values.items():
            if name not in by_name:
                known = ", ".join(by_name) or "none"
                raise ConfigError(f"where: {name!r} is not a categorical item feature (fields: {known})")
            f = by_name[name]
            index = {v: i + 1 for i, v in enumerate(f.vocabulary)}
            codes = [index[str(v)] for v in wanted if str(v) in index]
            hit = np.isin(f.codes, codes) if codes else np.zeros(len(f.codes), dtype=bool)
            owner = np.repeat(np.arange(self.n_items), np.diff(f.offsets))
            holds = np.zeros(self.n_items, dtype=bool)
            holds[owner[hit]] = True
            keep &= holds
        keep[0] = False
        return keep

    # persistence: arrays in an npz (no pickles), vocabularies and the report in JSON
    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for i, f in enumerate(self.categorical):
            arrays[f"categorical{i}_offsets"], arrays[f"categorical{i}_codes"] = f.offsets, f.codes
        for i, f in enumerate(self.dense):
            arrays[f"dense{i}_vectors"], arrays[f"dense{i}_present"] = f.vectors, f.present
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(directory / ARRAYS_FILE, buffer.getvalue())
        atomic_write_json(
            directory / FIELDS_FILE,
            {
                "n_items": self.n_items,
                "catalogue": self.catalogue,
                "categorical": [{"name": f.name, "vocabulary": f.vocabulary} for f in self.categorical],
                "dense": [
                    {"name": f.name, "shift": f.shift, "scale": f.scale, "standardised": f.standardised}
                    for f in self.dense
                ],
                "report": self.report,
            },
        )

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        return (Path(directory) / FIELDS_FILE).is_file()

    @classmethod
    def load(cls, directory: str | Path) -> ItemFeatures:
        directory = Path(directory)
        spec_path, arrays_path = directory / FIELDS_FILE, directory / ARRAYS_FILE
        try:
            spec = json.loads(spec_path.read_text())
            with np.load(arrays_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            n = int(spec["n_items"])
            categorical = [
                CategoricalField(
                    c["name"],
                    list(c["vocabulary"]),
                    arrays[f"categorical{i}_offsets"],
                    arrays[f"categorical{i}_codes"],
                )
                for i, c in enumerate(spec["categorical"])
            ]
            dense = [
                DenseField(
                    d["name"],
                    arrays[f"dense{i}_vectors"],
                    arrays[f"dense{i}_present"],
                    d["shift"],
                    d["scale"],
                    # saved before the kind was recorded: a one-number field is a standardised column
                    bool(d.get("standardised", arrays[f"dense{i}_vectors"].shape[1:] == (1,))),
                )
                for i, d in enumerate(spec["dense"])
            ]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{directory}: damaged item features ({error!r})") from None
        for f in categorical:
            ok = (
                f.offsets.shape == (n + 1,)
                and f.offsets[0] == 0
                and f.offsets[-1] == len(f.codes)
                and bool(np.all(np.diff(f.offsets) >= 0))
                and (len(f.codes) == 0 or (f.codes.min() >= 0 and f.codes.max() <= len(f.vocabulary)))
            )
            if not ok:
                raise DataError(f"{arrays_path}: field {f.name!r} does not fit {n} items")
        for f in dense:
            if f.vectors.ndim != 2 or f.vectors.shape[0] != n or f.present.shape != (n,):
                raise DataError(f"{arrays_path}: field {f.name!r} does not fit {n} items")
        return cls(n, categorical, dense, spec.get("report", {}), spec.get("catalogue"))

    def fingerprint(self) -> str:
        """A digest of every field's name, values and arrays: equal fingerprints, equal features."""
        digest = hashlib.sha256()
        for f in self.categorical:
            digest.update(json.dumps(["categorical", f.name, f.vocabulary]).encode())
            digest.update(f.offsets.astype(np.int64).tobytes() + f.codes.astype(np.int64).tobytes())
        for f in self.dense:
            digest.update(json.dumps(["dense", f.name, f.shift, f.scale, f.standardised]).encode())
            digest.update(f.vectors.astype(np.float32).tobytes() + f.present.astype(bool).tobytes())
        return digest.hexdigest()


# -- building fields from per-item values --------------------------------------------------------------------


def categorical_field(
    name: str, values: dict[int, list[str]], n_items: int, vocabulary: list[str] | None = None
) -> CategoricalField:
    """A field from {internal item: [values]} (repeats kept, order kept); items without values get MISSING.
    The vocabulary is the values found, or the one given (a trained model's; every value must be in it)."""
    if vocabulary is None:
        vocabulary = sorted({v for vs in values.values() for v in vs}, key=_natural_key)
    code = {v: i + 1 for i, v in enumerate(vocabulary)}
    lists = [[] if i == 0 else [code[v] for v in values.get(i, [])] or [MISSING] for i in range(n_items)]
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes = np.array([c for x in lists for c in x], dtype=np.int64)
    return CategoricalField(name, vocabulary, offsets, codes)


def dense_field(
    name: str,
    vectors: dict[int, np.ndarray],
    n_items: int,
    dim: int,
    scaling: tuple[float, float] | None = None,
) -> DenseField:
    """A field from {internal item: vector}, used as it is, or with `scaling` (shift, scale) a standardised
    number: the float64 arithmetic `_scaling_of` has checked."""
    table = np.zeros((n_items, dim), dtype=np.float64)
    present = np.zeros(n_items, dtype=bool)
    for item, vector in vectors.items():
        table[item], present[item] = vector, True
    shift, scale = scaling if scaling is not None else (0.0, 1.0)
    if scaling is not None:
        table[present] = (table[present] - shift) / scale
    return DenseField(name, table.astype(np.float32), present, shift, scale, scaling is not None)


def _natural_key(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


def _scaling_of(
    numbers: list[tuple[str, int, float]], column: str, path: Path, trained: tuple[float, float] | None
) -> tuple[float, float]:
    """The (shift, scale) that standardises a numeric column, checked: its own mean and deviation, refused
    when values so large make them overflow in float64; or a trained model's (`trained`, new items), refusing
    values further than VALUE_LIMIT standard deviations from what it was trained on. `numbers` are (where,
    item, value)."""
    if not numbers:
        return trained if trained is not None else (0.0, 1.0)
    values = np.array([v for _, _, v in numbers], dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if trained is None:
            shift, scale = float(values.mean()), float(values.std()) or 1.0
            if np.isfinite(shift) and np.isfinite(scale) and np.isfinite((values - shift) / scale).all():
                return shift, scale
            where = numbers[int(np.abs(values).argmax())][0]
            raise DataError(
                f"{path}:{where}: {column!r} value {values[np.abs(values).argmax()]:g} is too large to standardise "
                "with the column's other values; rescale the column (other units, or its logarithm)"
            )
        standardised = (values - trained[0]) / trained[1]
    far = np.flatnonzero(~(np.abs(standardised) <= VALUE_LIMIT))
    if len(far):
        where, _, value = numbers[far[0]]
        raise DataError(
            f"{path}:{where}: {column!r} value {value:g} lies {abs(standardised[far[0]]):.3g} standard deviations "
            f"from the values the model was trained on (at most {VALUE_LIMIT:g}); is it in other units?"
        )
    return trained


def _checked_vector(vector: np.ndarray, column: str, path: Path, where: str) -> None:
    if not np.isfinite(vector).all():
        raise DataError(
            f"{path}:{where}: {column!r} holds NaN or infinite values (leave it empty if missing)"
        )
    if len(vector) and np.abs(vector).max() > VALUE_LIMIT:
        raise DataError(
            f"{path}:{where}: {column!r} holds {np.abs(vector).max():g}; vectors are used as they are, so "
            f"their values must lie within ±{VALUE_LIMIT:g} (scale them, e.g. to unit length)"
        )


class _Matcher:
    """Maps a file's item ids to internal ids and counts what matched (a row per item at most)."""

    def __init__(self, dataset: SequenceDataset, path: Path):
        self.dataset, self.path = dataset, path
        self.seen: dict[int, str] = {}
        self.unknown = 0

    def __call__(self, raw_id: Any, where: str) -> int | None:
        text = str(raw_id).strip()
        if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
            text = text[:-2]
        if text == "":
            raise DataError(f"{self.path}:{where}: empty item id")
        internal = self.dataset.item_index(text)
        if internal is None:
            self.unknown += 1
            return None
        if internal in self.seen:
            raise DataError(
                f"{self.path}:{where}: item {text!r} appears again (first at {self.seen[internal]})"
            )
        self.seen[internal] = where
        return internal

    def report(self, fields: dict[str, int], columns: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """The file's report: what matched, and how each field was read (`columns`), with doubts (`warnings`)."""
        return {
            "file": str(self.path),
            "catalogue_items": self.dataset.n_items - 1,
            "matched_items": len(self.seen),
            "rows_for_unknown_items": self.unknown,
            "items_without_value": fields,
            "fields": columns,
            "warnings": warnings,
        }


def _categorical_reading(f: CategoricalField) -> dict[str, Any]:
    counts = np.bincount(f.codes, minlength=len(f.vocabulary) + 1)[1:]
    top = np.argsort(-counts, kind="stable")[:3]
    return {
        "read_as": "categorical",
        "values": int((counts > 0).sum()),
        "top": [f.vocabulary[i] for i in top if counts[i]],
    }


def _dense_reading(f: DenseField) -> dict[str, Any]:
    return {"read_as": "dense", "dimension": int(f.vectors.shape[1])}


def _layout_field(layout: ItemFeatures | None, name: str, kind: str | None, path: Path) -> Any:
    """The trained field `name` of `layout` (new items are read as the model read its items), refusing a
    field the model does not have or has of another kind than `kind` (if given); None without a layout."""
    if layout is None:
        return None
    fields = {f.name: f for f in layout.categorical} | {f.name: f for f in layout.dense}
    if name not in fields:
        known = ", ".join(f"{n} ({_kind_of(f)})" for n, f in fields.items())
        one = "FIELD=FILE (e.g. --new-items " if path.suffix.lower() in (".json", ".npy") else ""
        fitting = [n for n, f in fields.items() if kind is None or _base_kind(f) == kind] or list(fields)
        hint = f"; name its field with {one}{fitting[0]}={path.name})" if one else ""
        raise DataError(
            f"{path}: field {name!r} is not one the model was trained with (its fields: {known}){hint}"
        )
    if kind is not None and _base_kind(fields[name]) != kind:
        raise DataError(
            f"{path}: field {name!r} holds {kind} values here; the model was trained on it as {_kind_of(fields[name])}"
        )
    return fields[name]


def _base_kind(f: CategoricalField | DenseField) -> str:
    """ "categorical", "number" (a standardised numeric column) or "vector"."""
    if isinstance(f, CategoricalField):
        return "categorical"
    return "number" if f.standardised else "vector"


def _kind_of(f: CategoricalField | DenseField) -> str:
    kind = _base_kind(f)
    return f"vectors of dimension {f.vectors.shape[1]}" if kind == "vector" else kind


# -- the three readers ------------------------------------------------------------------------------------------


def _attribute_object(path: Path) -> dict[str, Any]:
    """The JSON object of an S3-Rec attribute file, refusing an item listed twice (json would keep the last)."""

    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            repeated = next(k for k in keys if keys.count(k) > 1)
            raise DataError(f"{path}: item {repeated!r} appears twice; each item needs one list")
        return dict(pairs)

    try:  # utf-8-sig: a byte order mark is accepted, as in text tables
        content = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a JSON file of item attributes ({error})") from None
    if not isinstance(content, dict):
        raise DataError(f'{path}: expected a JSON object {{"item id": [attribute ids, ...]}}')
    return content


def read_attribute_json(
    path: str | Path, dataset: SequenceDataset, name: str | None = None, layout: ItemFeatures | None = None
) -> ItemFeatures:
    """The S3-Rec format: {"item id": [attribute id, ...]}; one categorical field, `name` or "attributes"."""
    path = Path(path)
    field_name = name or "attributes"
    _layout_field(layout, field_name, "categorical", path)
    content = _attribute_object(path)
    match = _Matcher(dataset, path)
    values: dict[int, list[str]] = {}
    for key, attributes in content.items():
        if not isinstance(attributes, list) or not all(
            isinstance(a, (int, str)) and not isinstance(a, bool) and str(a).strip() for a in attributes
        ):
            raise DataError(
                f"{path}: item {key!r}: expected a list of attribute ids (none blank), got {attributes!r:.60}"
            )
        internal = match(key, f"item {key!r}")
        if internal is not None and attributes:
            values[internal] = [str(a).strip() for a in attributes]
    built = categorical_field(field_name, values, dataset.n_items)
    missing = dataset.n_items - 1 - len(values)
    report = match.report({field_name: missing}, {field_name: _categorical_reading(built)}, [])
    return ItemFeatures(dataset.n_items, [built], [], {"files": [report]}, dataset.item_ids_fingerprint())


def _item_table(
    path: Path, id_column: str | None, separator: str | None = None
) -> tuple[pl.DataFrame, int, str]:
    """(the table, the line or row number of its first row, its id column). Text tables are read with every
    column as text, so that nothing is inferred from the first rows only."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported item table {suffix!r}; expected one of {sorted(TABLE_SUFFIXES)}"
        )
    try:
        if suffix == ".parquet":
            frame, first = pl.read_parquet(path), 0
        else:
            sep = separator or detect_separator(path, TABLE_SUFFIXES[suffix] or ",")
            frame, first = pl.read_csv(path, separator=sep, infer_schema_length=0), 2
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as an item table: {str(error).splitlines()[0]}") from None
    frame = frame.rename({c: c.lstrip("\ufeff") for c in frame.columns})
    for column in frame.columns:  # Polars renames a repeated header name to NAME_duplicated_K
        repeated = re.fullmatch(r"(.+)_duplicated_\d+", column)
        if repeated and repeated.group(1) in frame.columns:
            raise DataError(f"{path}: column {repeated.group(1)!r} appears more than once in the header")
    ids = id_column or next((c for c in frame.columns if c.lower() in ID_COLUMNS), None)
    if ids is None or ids not in frame.columns:
        raise DataError(
            f"{path}: no item id column{' named ' + repr(id_column) if id_column else ''}; columns: "
            f"{', '.join(frame.columns)} (name it one of {', '.join(ID_COLUMNS)}, or pass --item-id-col)"
        )
    return frame, first, ids


def read_item_table(
    path: str | Path,
    dataset: SequenceDataset,
    id_column: str | None = None,
    categorical: tuple[str, ...] = (),
    multi_separator: str = "|",
    separator: str | None = None,
    layout: ItemFeatures | None = None,
) -> ItemFeatures:
    """An item table keyed by original item id; see the module docstring for what each column becomes. With
    `layout` (a trained model's features), every column must be one of its fields and is read as it was."""
    path = Path(path)
    frame, first, ids = _item_table(path, id_column, separator)
    where = "line" if first else "row"
    unknown_categorical = sorted(set(categorical) - set(frame.columns))
    if unknown_categorical:
        raise DataError(f"{path}: --categorical {unknown_categorical[0]!r} is not a column")
    if len(frame.columns) == 1:
        raise DataError(f"{path}: only the id column {ids!r}; no feature columns")
    match = _Matcher(dataset, path)
    rows = [match(raw, f"{where} {number + first}") for number, raw in enumerate(frame[ids].to_list())]
    features = ItemFeatures(dataset.n_items, catalogue=dataset.item_ids_fingerprint())
    without: dict[str, int] = {}
    readings: dict[str, Any] = {}
    warnings: list[str] = []
    for column in frame.columns:
        if column == ids:
            continue
        series = frame[column]
        _refuse_unreadable(series, column, path)
        cells = series.to_list()
        list_text = _is_list_text(series)
        if list_text:
            cells = [
                None if cell is None else _list_of_text(cell, path, f"{where} {number + first}", column)
                for number, cell in enumerate(cells)
            ]
        trained = _layout_field(layout, column, None, path)  # new items: read as the model read its items
        if trained is not None:
            kind = _base_kind(trained)
        else:
            kind = _column_kind(series, column in categorical, cells if list_text else None)
        labels = [f"{where} {number + first}" for number in range(len(cells))]
        if kind == "vector":
            vectors, dim = {}, trained.vectors.shape[1] if trained is not None else None
            for label, item, cell in zip(labels, rows, cells, strict=True):
                if item is None or cell is None:
                    continue
                vector = np.asarray(cell, dtype=np.float64)
                if dim is None:
                    dim = len(vector)
                if vector.ndim != 1 or len(vector) != dim:
                    before = "the model's" if trained is not None else "the rows before"
                    raise DataError(
                        f"{path}:{label}: {column!r} must be {dim} finite numbers like {before}, got {cell!r:.60}"
                    )
                _checked_vector(vector, column, path, label)
                vectors[item] = vector
            if dim is None:
                raise DataError(f"{path}: vector column {column!r} has no value for any catalogue item")
            if dim == 0:
                raise DataError(f"{path}: vector column {column!r} holds empty vectors")
            built = dense_field(column, vectors, dataset.n_items, dim)
            features.dense.append(built)
            readings[column] = _dense_reading(built)
            without[column] = dataset.n_items - 1 - len(vectors)
        elif kind == "number":
            numbers: list[tuple[str, int, float]] = []
            for label, item, cell in zip(labels, rows, cells, strict=True):
                if item is None or cell is None or str(cell).strip() == "":
                    continue
                try:
                    value = float(cell)
                except (TypeError, ValueError):
                    hint = (
                        "the model was trained on it as numbers"
                        if trained is not None
                        else f"pass --categorical {column} to read the column as categories"
                    )
                    raise DataError(
                        f"{path}:{label}: {column!r} value {cell!r} is not a number; {hint}"
                    ) from None
                if not math.isfinite(value):
                    raise DataError(f"{path}:{label}: {column!r} value {cell!r} is not finite")
                numbers.append((label, item, value))
            learned = (trained.shift, trained.scale) if trained is not None else None
            scaling = _scaling_of(numbers, column, path, learned)
            vectors = {item: np.array([value]) for _, item, value in numbers}
            built = dense_field(column, vectors, dataset.n_items, 1, scaling)
            features.dense.append(built)
            raw = [value for _, _, value in numbers]  # the range as written, not as float32 gives it back
            readings[column] = {
                "read_as": "number",
                "min": min(raw, default=None),
                "max": max(raw, default=None),
            }
            without[column] = dataset.n_items - 1 - len(numbers)
            distinct = {value for _, _, value in numbers}
            if (
                trained is None
                and len(distinct) <= FEW_CODES
                and len(numbers) > len(distinct)
                and all(float(v).is_integer() for v in distinct)
            ):
                warnings.append(
                    f"{column!r} holds only {len(distinct)} distinct integers and is read as one number; if "
                    f"they are codes (a category), pass --categorical {column}"
                )
        else:
            if column not in categorical and not list_text and trained is None:
                _refuse_numbers_mixed_with_text(series, column, path, where, first)
            values: dict[int, list[str]] = {}
            for item, cell in zip(rows, cells, strict=True):
                if item is None or cell is None:
                    continue
                parts = cell if isinstance(cell, list) else str(cell).split(multi_separator)
                kept = [_value_text(p) for p in parts if p is not None and str(p).strip() != ""]
                if kept:
                    values[item] = kept
            built = categorical_field(column, values, dataset.n_items)
            features.categorical.append(built)
            readings[column] = _categorical_reading(built)
            without[column] = dataset.n_items - 1 - len(values)
            distinct_values = readings[column]["values"]
            if trained is None and len(values) >= 20 and distinct_values >= 0.9 * len(values):
                warnings.append(
                    f"{column!r}: {distinct_values} distinct values among {len(values)} items; as categories "
                    "they share almost nothing (is it an id, a free text or a number?)"
                )
        if list_text:
            readings[column]["from"] = "text written as lists"
    features.report = {"files": [match.report(without, readings, warnings)]}
    for warning in warnings:
        log.warning("item features %s: %s", path, warning)
    return features


NUMBER = r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|(?i:inf|infinity|nan))$"  # non-finite: refused later
LIST_TEXT = r"^\s*\[.*\]\s*$"


def _value_text(value: Any) -> str:
    """A categorical value as text: integral floats as integers (1.0 and 1 are one code)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _numbers_in_text(series: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Of a text column: which cells hold a value (not null or blank), and which of those read as a number."""
    text = series.str.strip_chars()
    given = text.is_not_null() & (text != "")
    return given, given & text.str.contains(NUMBER)


def _is_list_text(series: pl.Series) -> bool:
    """A text column whose every value is written as a list, `[6285, 194]` or `["a", "b"]`."""
    if series.dtype != pl.String:
        return False
    given, _ = _numbers_in_text(series)
    return bool(given.any()) and bool(series.filter(given).str.contains(LIST_TEXT, strict=False).all())


def _list_of_text(cell: str, path: Path, where: str, column: str) -> list[Any]:
    """A list written as text: JSON, or comma-separated values inside brackets (quotes removed)."""
    try:
        value = json.loads(cell)
    except ValueError:
        inner = cell.strip()[1:-1]
        value = [part.strip().strip("'\"") for part in inner.split(",")] if inner.strip() else []
    if not isinstance(value, list) or any(isinstance(v, (list, dict)) for v in value):
        raise DataError(f"{path}:{where}: {column!r} value {cell!r:.60} is not a flat list")
    return value


def _column_kind(series: pl.Series, forced_categorical: bool, parsed: list[Any] | None = None) -> str:
    """ "vector" (a list of floats), "number" or "categorical". `parsed`: the cells of a column of lists
    written as text (a vector when every element is a number and some are not integers)."""
    if parsed is not None:
        elements = [v for cell in parsed if cell for v in cell]
        numeric = elements and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in elements)
        has_fraction = numeric and any(not float(v).is_integer() for v in elements)
        return "vector" if has_fraction and not forced_categorical else "categorical"
    dtype = series.dtype
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = dtype.inner
        numeric = inner.is_numeric() and not forced_categorical and inner not in (pl.Boolean,)
        return "vector" if numeric and inner.is_float() else "categorical"
    if forced_categorical or dtype == pl.Boolean:
        return "categorical"
    if dtype.is_numeric():
        return "number"
    if dtype == pl.String:
        given, numeric = _numbers_in_text(series)
        if given.any() and numeric.sum() == given.sum() and series.str.contains(r"\d").any():
            return "number"
    return "categorical"


def _refuse_unreadable(series: pl.Series, column: str, path: Path) -> None:
    """Refuse a column whose values have no reading as item features (structs, bytes, nested lists, dates,
    objects) instead of turning their Python representations into categories."""
    dtype = series.dtype

    def readable(d: pl.DataType) -> bool:
        return d == pl.String or d == pl.Boolean or d.is_numeric() or isinstance(d, (pl.Categorical, pl.Enum))

    if isinstance(dtype, (pl.List, pl.Array)):
        if readable(dtype.inner) or dtype.inner == pl.Null:
            return
        detail = (
            "a list of lists" if isinstance(dtype.inner, (pl.List, pl.Array)) else f"a list of {dtype.inner}"
        )
    elif readable(dtype) or dtype == pl.Null:
        return
    else:
        detail = str(dtype)
    raise DataError(
        f"{path}: column {column!r} holds {detail}; item features are text, numbers, booleans or flat lists of "
        "them (convert the column, e.g. a date to a number of days, or leave it out)"
    )


def _refuse_numbers_mixed_with_text(
    series: pl.Series, column: str, path: Path, where: str, first: int
) -> None:
    """A text column of which at least half the values are numbers is most likely a numeric column with a typo
    (or a unit) in some rows: reading it as categories would turn every price into a category of its own."""
    if series.dtype != pl.String:
        return
    given, numeric = _numbers_in_text(series)
    if numeric.sum() * 2 < given.sum() or numeric.sum() == 0:
        return
    row = int((given & ~numeric).arg_max())
    raise DataError(
        f"{path}:{where} {row + first}: {column!r} value {series[row]!r} is not a number, though "
        f"{numeric.sum()} of the column's {given.sum()} values are; fix it, or pass --categorical {column} to "
        "read the column as categories"
    )


def _vector_ids(path: Path) -> tuple[Path, list[str]]:
    """The id file of `NAME.npy` and its ids, one per line."""
    ids_path = path.with_suffix(".ids.txt")
    if not ids_path.is_file():
        raise DataError(f"{path}: the ids of its rows go in {ids_path} (one item id per line, in row order)")
    return ids_path, ids_path.read_text(encoding="utf-8-sig").splitlines()


def read_item_vectors(
    path: str | Path, dataset: SequenceDataset, name: str | None = None, layout: ItemFeatures | None = None
) -> ItemFeatures:
    """`NAME.npy` (items x dimension) with the item ids, one per line, in `NAME.ids.txt` beside it; one dense
    field, `name` or NAME."""
    path = Path(path)
    field_name = name or path.stem
    trained = _layout_field(layout, field_name, "vector", path)
    ids_path, ids = _vector_ids(path)
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a NumPy array file ({error})") from None
    if (
        vectors.ndim != 2
        or not np.issubdtype(vectors.dtype, np.number)
        or np.issubdtype(vectors.dtype, np.complexfloating)
        or vectors.shape[1] == 0
    ):
        raise DataError(
            f"{path}: expected a 2-d real array (items x dimension), got {vectors.dtype} {vectors.shape}"
        )
    if trained is not None and vectors.shape[1] != trained.vectors.shape[1]:
        raise DataError(
            f"{path}: vectors of dimension {vectors.shape[1]}; the model was trained on {field_name!r} of "
            f"dimension {trained.vectors.shape[1]}"
        )
    if len(ids) != len(vectors):
        raise DataError(f"{ids_path}: {len(ids)} ids for the {len(vectors)} rows of {path}")
    match = _Matcher(dataset, ids_path)
    table = {}
    for number, raw in enumerate(ids):
        vector = vectors[number].astype(np.float64)
        _checked_vector(vector, field_name, path, f"row {number} (item {raw.strip()!r})")
        item = match(raw, f"line {number + 1}")
        if item is not None:
            table[item] = vector
    built = dense_field(field_name, table, dataset.n_items, vectors.shape[1])
    report = match.report(
        {field_name: dataset.n_items - 1 - len(table)}, {field_name: _dense_reading(built)}, []
    )
    return ItemFeatures(dataset.n_items, [], [built], {"files": [report]}, dataset.item_ids_fingerprint())


def read_item_features(
    path: str | Path,
    dataset: SequenceDataset,
    id_column: str | None = None,
    categorical: tuple[str, ...] = (),
    multi_separator: str = "|",
    layout: ItemFeatures | None = None,
) -> ItemFeatures:
    """One file of item side information, by its kind (the module docstring); `FIELD=FILE` names the field of
    a one-field file. With `layout` (a trained model's features), read as the model read its items."""
    name, path = split_field_name(path)
    if ItemFeatures.saved_in(path):  # a directory written by `bsarec data prepare` or a run
        if name is not None:
            raise DataError(f"{name}={path}: a saved features directory keeps its own field names")
        saved = ItemFeatures.load(path)
        if saved.n_items != dataset.n_items or (
            saved.catalogue is not None and saved.catalogue != dataset.item_ids_fingerprint()
        ):
            raise DataError(
                f"{path}: features of another catalogue ({saved.n_items - 1} items"
                f"{', other item ids' if saved.n_items == dataset.n_items else ''}); {dataset.name} has "
                f"{dataset.n_items - 1}. Prepare them again for this dataset"
            )
        return saved
    if not path.is_file():
        raise DataError(f"{path}: no such item features file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_attribute_json(path, dataset, name, layout)
    if suffix == ".npy":
        return read_item_vectors(path, dataset, name, layout)
    if name is not None:
        raise DataError(
            f"{name}={path}: FIELD=FILE names the one field of a .json or .npy file; a table's fields are "
            "named after its columns"
        )
    return read_item_table(path, dataset, id_column, categorical, multi_separator, layout=layout)


def read_all_item_features(paths: list[str | Path], dataset: SequenceDataset, **options: Any) -> ItemFeatures:
    """Several files' fields side by side (field names must differ)."""
    if not paths:
        raise DataError("item features: no file given")
    features = read_item_features(paths[0], dataset, **options)
    for path in paths[1:]:
        features = features.merged(read_item_features(path, dataset, **options))
    return features


def resolve_item_features(
    spec: str,
    dataset: SequenceDataset,
    data_dir: str | Path | None = None,
    check: bool = True,
    **options: Any,
) -> ItemFeatures:
    """The `item_features` setting: files, comma-separated; "attributes" is the S3-Rec attribute file of a
    registered dataset (found or downloaded like the dataset, checksum checked). With `check`, the result is
    checked as training and `data prepare` need it (`check_matched`; `fit` checks what it is given itself)."""
    paths: list[str | Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if part == "attributes":
            paths.append(locate_attributes(dataset.name, data_dir))
        elif part:
            paths.append(part)
    features = read_all_item_features(paths, dataset, **options)
    if check:
        check_matched(features, dataset.name)
    return features


def check_matched(features: ItemFeatures, dataset_name: str) -> None:
    """The one rule for features a dataset is trained or prepared with: say how many of its items each file
    describes (in the run's log); refuse a file that matches none (its ids are not the dataset's original item
    ids) and a field with no value for any item; warn when a file describes under half of the items."""
    for report in features.report.get("files", []):
        matched, catalogue = report["matched_items"], report["catalogue_items"]
        missing = {name: n for name, n in report["items_without_value"].items() if n}
        log.info(
            "item features %s: %d of %d items of %s matched, %d rows for unknown items%s",
            report["file"],
            matched,
            catalogue,
            dataset_name,
            report["rows_for_unknown_items"],
            f"; items without a value: {missing}" if missing else "",
        )
        if matched == 0:
            raise DataError(
                f"{report['file']}: no row names an item of {dataset_name} "
                f"({report['rows_for_unknown_items']} rows for unknown items); its ids must be the original "
                "item ids of the interaction log"
            )
        empty = [name for name, n in report["items_without_value"].items() if n >= catalogue]
        if empty:
            raise DataError(
                f"{report['file']}: field {empty[0]!r} has no value for any item of {dataset_name} "
                f"({matched} items matched); leave the column out or fill it"
            )
        if matched < catalogue / 2:
            log.warning(
                "item features %s describe only %d of %d items (%.1f%%); the others have missing values",
                report["file"],
                matched,
                catalogue,
                100 * matched / catalogue,
            )


# -- items that arrive after training ---------------------------------------------------------------------------


def file_item_ids(path: str | Path, id_column: str | None = None) -> list[str]:
    """The item ids a features file describes, as text, in file order (`FIELD=FILE` accepted); an empty id
    is refused with its place."""
    _, path = split_field_name(path)
    if not path.is_file():
        raise DataError(f"{path}: no such item features file")
    if path.suffix.lower() == ".json":
        ids = [str(k).strip() for k in _attribute_object(path)]
        places = [f"{path}: item {number} of the object" for number in range(len(ids))]
    elif path.suffix.lower() == ".npy":
        ids_path, lines = _vector_ids(path)
        ids = [line.strip() for line in lines]
        places = [f"{ids_path}:line {number + 1}" for number in range(len(ids))]
    else:
        frame, first, column = _item_table(path, id_column)
        ids = ["" if v is None else str(v).strip() for v in frame[column].to_list()]
        places = [f"{path}:{'line' if first else 'row'} {number + first}" for number in range(len(ids))]
    for item, place in zip(ids, places, strict=True):
        if item == "":
            raise DataError(f"{place}: empty item id")
    return ids


def conform(
    new: ItemFeatures, trained: ItemFeatures, source: str, learned: list[int] | None = None
) -> tuple[ItemFeatures, dict[str, Any]]:
    """`new` items' features (read with the trained `layout`, see `read_item_features`) in the layout of a
    trained model's `trained` features: the same fields in the same order, categorical values coded with the
    trained vocabularies, numbers standardised as in training. A value the model never saw (beyond the first
    `learned[k]` values of field k's vocabulary, all of them by default) is counted and appended to the
    vocabulary: selection by attribute finds it, the model has no vector for it (models/item_features.py
    leaves it out). A field of `new` the model does not know is refused; a trained field that `new` lacks is
    missing for every new item (named in the report)."""
    unknown = sorted(set(new.names) - set(trained.names))
    if unknown:
        raise DataError(f"{source}: field {unknown[0]!r} is not one the model was trained with")
    report: dict[str, Any] = {
        "unseen_values": {},
        "fields_not_given": [name for name in trained.names if name not in new.names],
    }
    by_name_cat = {f.name: f for f in new.categorical}
    by_name_dense = {f.name: f for f in new.dense}
    categorical = []
    for k, f in enumerate(trained.categorical):
        known = set(f.vocabulary[: learned[k]] if learned is not None else f.vocabulary)
        vocabulary = list(f.vocabulary)
        values: dict[int, list[str]] = {}
        if f.name in by_name_cat:
            given, unseen = by_name_cat[f.name], 0
            listed = set(vocabulary)
            for item in range(1, new.n_items):
                values[item] = given.values_of(item)
                for value in values[item]:
                    unseen += value not in known
                    if value not in listed:
                        vocabulary.append(value)
                        listed.add(value)
            report["unseen_values"][f.name] = unseen
        categorical.append(categorical_field(f.name, values, new.n_items, vocabulary))
    dense = []
    for f in trained.dense:
        dim = f.vectors.shape[1]
        if f.name not in by_name_dense:
            dense.append(
                DenseField(
                    f.name,
                    np.zeros((new.n_items, dim), np.float32),
                    np.zeros(new.n_items, bool),
                    f.shift,
                    f.scale,
                    f.standardised,
                )
            )
            continue
        given = by_name_dense[f.name]
        if given.vectors.shape[1] != dim or given.standardised != f.standardised:
            raise DataError(
                f"{source}: {f.name!r} holds {_kind_of(given)}; the model was trained on {_kind_of(f)}"
            )
        raw = given.vectors.astype(np.float64) * given.scale + given.shift  # undo the file's own scaling
        vectors = np.where(given.present[:, None], (raw - f.shift) / f.scale, 0.0).astype(np.float32)
        dense.append(DenseField(f.name, vectors, given.present.copy(), f.shift, f.scale, f.standardised))
    features = ItemFeatures(new.n_items, categorical, dense, {"files": new.report.get("files", [])})
    return features, report


def appended(trained: ItemFeatures, new: ItemFeatures) -> ItemFeatures:
    """`trained` followed by the rows 1.. of `new` (which has the same layout, see `conform`: its vocabularies
    start with `trained`'s)."""
    categorical = []
    for a, b in zip(trained.categorical, new.categorical, strict=True):
        if b.vocabulary[: len(a.vocabulary)] != a.vocabulary:
            raise ValueError(f"appended: field {a.name!r} of the new items is not coded like the trained one")
        tail = b.codes[b.offsets[1] :]
        offsets = np.concatenate([a.offsets, a.offsets[-1] + b.offsets[2:] - b.offsets[1]])
        categorical.append(CategoricalField(a.name, b.vocabulary, offsets, np.concatenate([a.codes, tail])))
    dense = [
        DenseField(
            a.name,
            np.concatenate([a.vectors, b.vectors[1:]]),
            np.concatenate([a.present, b.present[1:]]),
            a.shift,
            a.scale,
            a.standardised,
        )
        for a, b in zip(trained.dense, new.dense, strict=True)
    ]
    return ItemFeatures(trained.n_items + new.n_items - 1, categorical, dense, trained.report)


def reading_table(report: dict[str, Any]) -> str:
    """How each file's fields were read, as a plain-text table (what `bsarec data prepare` prints), with the
    readings that may be wrong underneath."""
    lines = []
    for file in report.get("files", []):
        lines.append(
            f"{file['file']}: {file['matched_items']} of {file['catalogue_items']} items matched, "
            f"{file['rows_for_unknown_items']} rows for unknown items"
        )
        rows = [("field", "read as", "", "items without a value")]
        for name, reading in file.get("fields", {}).items():
            kind = reading["read_as"]
            if kind == "categorical":
                detail = f"{reading['values']} values; most common: {', '.join(map(str, reading['top']))}"
            elif kind == "number":
                detail = (
                    f"range {reading['min']:g} .. {reading['max']:g}" if reading["min"] is not None else ""
                )
                detail += ", standardised"
            else:
                detail = f"dimension {reading['dimension']}"
            if reading.get("from"):
                detail += f" ({reading['from']})"
            rows.append((name, kind, detail, str(file["items_without_value"].get(name, ""))))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines += [
            "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            for row in rows
        ]
        lines += [f"  warning: {warning}" for warning in file.get("warnings", [])]
    return "\n".join(line.rstrip() for line in lines)
