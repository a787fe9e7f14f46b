"""Item side information: categorical fields (single- or multi-valued) and dense vectors, aligned to a dataset's
internal item ids, read from three kinds of file (docs/item_features.md):

- the S3-Rec attribute format, a JSON object {"item id": [attribute ids, ...]} (repeats allowed);
- an item table (CSV, TSV, Parquet) keyed by original item id: text columns are categorical fields (a Parquet
  list column, or text joined by `multi_separator`, is multi-valued), numeric columns are one-number dense
  fields (standardised over the catalogue), list-of-number columns are dense vectors;
- dense vectors from NumPy: `NAME.npy` (items x dimension) with the ids, one per line, in `NAME.ids.txt`;
- a directory of features saved by `bsarec data prepare --item-features` (or a run's `item_features`).

Items are matched through the dataset's id map. Rows for ids outside the catalogue are counted in the report (a
file may describe more items than were interacted with). An item without a value gets the field's explicit
*missing* code (categorical) or a false `present` flag (dense), never a silent zero that looks like a category.
Row 0 (padding) has no features at all.
"""

from __future__ import annotations

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


@dataclass
class ItemFeatures:
    n_items: int
    categorical: list[CategoricalField] = field(default_factory=list)
    dense: list[DenseField] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

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
                "categorical": [{"name": f.name, "vocabulary": f.vocabulary} for f in self.categorical],
                "dense": [{"name": f.name, "shift": f.shift, "scale": f.scale} for f in self.dense],
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
                )
                for i, d in enumerate(spec["dense"])
            ]
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
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
        return cls(n, categorical, dense, spec.get("report", {}))


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
    name: str, vectors: dict[int, np.ndarray], n_items: int, dim: int, standardise: bool
) -> DenseField:
    table = np.zeros((n_items, dim), dtype=np.float32)
    present = np.zeros(n_items, dtype=bool)
    for item, vector in vectors.items():
        table[item], present[item] = vector, True
    shift, scale = 0.0, 1.0
    if standardise and present.any():
        shift = float(table[present].mean())
        scale = float(table[present].std()) or 1.0
        table[present] = (table[present] - shift) / scale
    return DenseField(name, table, present, shift, scale)


def _natural_key(value: str) -> tuple[int, Any]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


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

    def report(self, fields: dict[str, int]) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "catalogue_items": self.dataset.n_items - 1,
            "matched_items": len(self.seen),
            "rows_for_unknown_items": self.unknown,
            "items_without_value": fields,
        }


# -- the three readers ------------------------------------------------------------------------------------------


def _attribute_object(path: Path) -> dict[str, Any]:
    """The JSON object of an S3-Rec attribute file, refusing an item listed twice (json would keep the last)."""

    def no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            repeated = next(k for k in keys if keys.count(k) > 1)
            raise DataError(f"{path}: item {repeated!r} appears twice; each item needs one list")
        return dict(pairs)

    try:
        content = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a JSON file of item attributes ({error})") from None
    if not isinstance(content, dict):
        raise DataError(f'{path}: expected a JSON object {{"item id": [attribute ids, ...]}}')
    return content


def read_attribute_json(path: str | Path, dataset: SequenceDataset, name: str | None = None) -> ItemFeatures:
    """The S3-Rec format: {"item id": [attribute id, ...]}; one categorical field named after the file."""
    path = Path(path)
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
    field_name = name or ("attributes" if path.stem.endswith("item2attributes") else path.stem)
    built = categorical_field(field_name, values, dataset.n_items)
    missing = dataset.n_items - 1 - len(values)
    return ItemFeatures(dataset.n_items, [built], [], {"files": [match.report({field_name: missing})]})


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
) -> ItemFeatures:
    """An item table keyed by original item id; see the module docstring for what each column becomes."""
    path = Path(path)
    frame, first, ids = _item_table(path, id_column, separator)
    where = "line" if first else "row"
    unknown_categorical = sorted(set(categorical) - set(frame.columns))
    if unknown_categorical:
        raise DataError(f"{path}: --categorical {unknown_categorical[0]!r} is not a column")
    if len(frame.columns) == 1:
        raise DataError(f"{path}: only the id column {ids!r}; no feature columns")
    match = _Matcher(dataset, path)
    rows: list[int | None] = []
    for number, raw in enumerate(frame[ids].to_list()):
        if raw is None or str(raw).strip() == "":
            raise DataError(f"{path}:{where} {number + first}: empty item id")
        rows.append(match(raw, f"{where} {number + first}"))
    features = ItemFeatures(dataset.n_items)
    without: dict[str, int] = {}
    for column in frame.columns:
        if column == ids:
            continue
        series = frame[column]
        kind = _column_kind(series, column in categorical)
        cells = series.to_list()
        if kind == "vector":
            vectors, dim = {}, None
            for number, (item, cell) in enumerate(zip(rows, cells, strict=True)):
                if item is None or cell is None:
                    continue
                vector = np.asarray(cell, dtype=np.float64)
                if dim is None:
                    dim = len(vector)
                if vector.ndim != 1 or len(vector) != dim or not np.isfinite(vector).all():
                    raise DataError(
                        f"{path}:{where} {number + first}: {column!r} must be {dim} finite numbers like the rows "
                        f"before, got {cell!r:.60}"
                    )
                vectors[item] = vector
            if dim is None:
                raise DataError(f"{path}: vector column {column!r} has no value for any catalogue item")
            if dim == 0:
                raise DataError(f"{path}: vector column {column!r} holds empty vectors")
            features.dense.append(dense_field(column, vectors, dataset.n_items, dim, standardise=False))
            without[column] = dataset.n_items - 1 - len(vectors)
        elif kind == "number":
            numbers = {}
            for number, (item, cell) in enumerate(zip(rows, cells, strict=True)):
                if item is None or cell is None or str(cell).strip() == "":
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    raise DataError(
                        f"{path}:{where} {number + first}: {column!r} value {cell!r} is not a number; "
                        f"pass --categorical {column} to read the column as categories"
                    ) from None
                if not math.isfinite(value):
                    raise DataError(
                        f"{path}:{where} {number + first}: {column!r} value {cell!r} is not finite"
                    )
                numbers[item] = np.array([value])
            features.dense.append(dense_field(column, numbers, dataset.n_items, 1, standardise=True))
            without[column] = dataset.n_items - 1 - len(numbers)
        else:
            if column not in categorical:
                _refuse_numbers_mixed_with_text(series, column, path, where, first)
            values: dict[int, list[str]] = {}
            for item, cell in zip(rows, cells, strict=True):
                if item is None or cell is None:
                    continue
                parts = cell if isinstance(cell, list) else str(cell).split(multi_separator)
                kept = [str(p).strip() for p in parts if p is not None and str(p).strip() != ""]
                if kept:
                    values[item] = kept
            features.categorical.append(categorical_field(column, values, dataset.n_items))
            without[column] = dataset.n_items - 1 - len(values)
    features.report = {"files": [match.report(without)]}
    return features


NUMBER = r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|(?i:inf|infinity|nan))$"  # non-finite: refused later


def _numbers_in_text(series: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Of a text column: which cells hold a value (not null or blank), and which of those read as a number."""
    text = series.str.strip_chars()
    given = text.is_not_null() & (text != "")
    return given, given & text.str.contains(NUMBER)


def _column_kind(series: pl.Series, forced_categorical: bool) -> str:
    """ "vector" (a list of numbers), "number" or "categorical"."""
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
    return ids_path, ids_path.read_text(encoding="utf-8").splitlines()


def read_item_vectors(path: str | Path, dataset: SequenceDataset) -> ItemFeatures:
    """`NAME.npy` (items x dimension) with the item ids, one per line, in `NAME.ids.txt` beside it."""
    path = Path(path)
    ids_path, ids = _vector_ids(path)
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a NumPy array file ({error})") from None
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number) or vectors.shape[1] == 0:
        raise DataError(
            f"{path}: expected a 2-d numeric array (items x dimension), got {vectors.dtype} {vectors.shape}"
        )
    if len(ids) != len(vectors):
        raise DataError(f"{ids_path}: {len(ids)} ids for the {len(vectors)} rows of {path}")
    bad = np.flatnonzero(~np.isfinite(vectors).all(1))
    if len(bad):
        raise DataError(f"{path}: row {bad[0]} (item {ids[bad[0]]!r}) holds NaN or infinite values")
    match = _Matcher(dataset, ids_path)
    table = {}
    for number, raw in enumerate(ids):
        item = match(raw, f"line {number + 1}")
        if item is not None:
            table[item] = vectors[number].astype(np.float64)
    name = path.stem
    built = dense_field(name, table, dataset.n_items, vectors.shape[1], standardise=False)
    report = match.report({name: dataset.n_items - 1 - len(table)})
    return ItemFeatures(dataset.n_items, [], [built], {"files": [report]})


def read_item_features(
    path: str | Path,
    dataset: SequenceDataset,
    id_column: str | None = None,
    categorical: tuple[str, ...] = (),
    multi_separator: str = "|",
) -> ItemFeatures:
    """One file of item side information, by its kind (the module docstring)."""
    path = Path(path)
    if ItemFeatures.saved_in(path):  # a directory written by `bsarec data prepare` or a run
        saved = ItemFeatures.load(path)
        if saved.n_items != dataset.n_items:
            raise DataError(
                f"{path}: features of {saved.n_items - 1} items; {dataset.name} has {dataset.n_items - 1}"
            )
        return saved
    if not path.is_file():
        raise DataError(f"{path}: no such item features file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_attribute_json(path, dataset)
    if suffix == ".npy":
        return read_item_vectors(path, dataset)
    return read_item_table(path, dataset, id_column, categorical, multi_separator)


def read_all_item_features(paths: list[str | Path], dataset: SequenceDataset, **options: Any) -> ItemFeatures:
    """Several files' fields side by side (field names must differ)."""
    if not paths:
        raise DataError("item features: no file given")
    features = read_item_features(paths[0], dataset, **options)
    for path in paths[1:]:
        features = features.merged(read_item_features(path, dataset, **options))
    return features


def resolve_item_features(
    spec: str, dataset: SequenceDataset, data_dir: str | Path | None = None, **options: Any
) -> ItemFeatures:
    """The `item_features` setting: files, comma-separated; "attributes" is the S3-Rec attribute file of a
    registered dataset (found or downloaded like the dataset, checksum checked)."""
    paths: list[str | Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if part == "attributes":
            paths.append(locate_attributes(dataset.name, data_dir))
        elif part:
            paths.append(part)
    return read_all_item_features(paths, dataset, **options)


def check_matched(features: ItemFeatures, dataset_name: str) -> None:
    """Say how many of the dataset's items each file describes (in the run's log); refuse a file that matches
    none (its ids are not the dataset's original item ids) and warn when under half match."""
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
    """The item ids a features file describes, as text, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such item features file")
    if path.suffix.lower() == ".json":
        return [str(k).strip() for k in _attribute_object(path)]
    if path.suffix.lower() == ".npy":
        return [line.strip() for line in _vector_ids(path)[1]]
    frame, _, ids = _item_table(path, id_column)
    return [str(v).strip() for v in frame[ids].to_list() if v is not None]


def conform(
    new: ItemFeatures, trained: ItemFeatures, source: str, learned: list[int] | None = None
) -> tuple[ItemFeatures, dict[str, Any]]:
    """`new` items' features in the layout of a trained model's `trained` features: the same fields in the
    same order, categorical values coded with the trained vocabularies, numbers standardised as in training.
    A value the model never saw (beyond the first `learned[k]` values of field k's vocabulary, all of them by
    default) is counted and appended to the vocabulary: selection by attribute finds it, the model has no
    vector for it (models/item_features.py leaves it out). A field of `new` the model does not know is
    ignored (named in the report); a trained field that `new` lacks is missing for every new item."""
    report: dict[str, Any] = {
        "unseen_values": {},
        "ignored_fields": sorted(set(new.names) - set(trained.names)),
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
                DenseField(f.name, np.zeros((new.n_items, dim), np.float32), np.zeros(new.n_items, bool))
            )
            continue
        given = by_name_dense[f.name]
        if given.vectors.shape[1] != dim:
            raise DataError(
                f"{source}: {f.name!r} has dimension {given.vectors.shape[1]}; the model was trained on {dim}"
            )
        raw = given.vectors * given.scale + given.shift  # undo the new file's own standardisation
        vectors = np.where(given.present[:, None], (raw - f.shift) / f.scale, 0.0).astype(np.float32)
        dense.append(DenseField(f.name, vectors, given.present.copy(), f.shift, f.scale))
    return ItemFeatures(new.n_items, categorical, dense, {"files": new.report.get("files", [])}), report


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
        )
        for a, b in zip(trained.dense, new.dense, strict=True)
    ]
    return ItemFeatures(trained.n_items + new.n_items - 1, categorical, dense, trained.report)
