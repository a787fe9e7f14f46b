"""Reader for raw interaction logs (CSV, TSV, Parquet) and the benchmark-style preprocessing.

Steps, in order: read with Polars; find the user, item and timestamp columns (given or detected by common
names); reject null ids and unparseable timestamps with the row's line number; order each user's events by
timestamp (stable: ties keep file order); optional iterative k-core filtering; remap items to 1..N (0 is
padding) in order of first appearance, users in order of first appearance in the file. Original ids are
kept in the dataset's id maps. Exact duplicate events are kept: repeat consumption is real behaviour.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bsarec.data.dataset import SequenceDataset
from bsarec.errors import DataError

USER_COLUMNS = ("user_id", "userid", "user", "uid", "customer_id", "visitor_id", "visitorid", "session_id")
ITEM_COLUMNS = (
    "item_id",
    "itemid",
    "item",
    "iid",
    "product_id",
    "productid",
    "movie_id",
    "movieid",
    "asin",
    "business_id",
    "track_id",
    "artist_id",
    "sku",
)
TIME_COLUMNS = ("timestamp", "time", "ts", "datetime", "date", "event_time", "created_at", "unix_time")
LOG_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".parquet": None, ".pq": None}
SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
SEPARATOR_NAMES = {"comma": ",", "tab": "\t", "\\t": "\t", "semicolon": ";", "pipe": "|"}


def parse_separator(text: str) -> str:
    """A --separator value: one character, or comma, tab (also \\t), semicolon, pipe."""
    separator = SEPARATOR_NAMES.get(text.lower(), text)
    if len(separator) != 1:
        raise DataError(
            f"--separator {text!r}: expected one character or one of {', '.join(SEPARATOR_NAMES)}"
        )
    return separator


def detect_separator(path: Path, default: str) -> str:
    """The separator of a text log, from its header line: the file suffix's own (`default`) when the header
    holds it, else the most frequent of comma, tab, semicolon and pipe (a tab-separated export named .csv)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    counts = {separator: header.count(separator) for separator in SEPARATORS}
    if counts[default]:
        return default
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else default


def is_interaction_log(path: str | Path) -> bool:
    return Path(path).suffix.lower() in LOG_SUFFIXES


def _detect(
    columns: list[str], wanted: str | None, candidates: tuple[str, ...], role: str, path: Path
) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{path}: no {role} column {wanted!r}; columns are {columns}")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    flag = {"user": "--user-col", "item": "--item-col", "timestamp": "--time-col"}[role]
    raise DataError(
        f"{path}: cannot find the {role} column among {columns}; name it with {flag} "
        f"(detected names: {', '.join(candidates)})"
    )


def read_log_table(
    path: str | Path,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    separator: str | None = None,
    time_format: str | None = None,
) -> tuple[pl.DataFrame, int, dict[str, int]]:
    """Read a log into columns user, item, time (float64), line. Returns (frame, first data line number, what
    was changed in reading: ids stripped of spaces or written as floats).
    A text log's separator is `separator`, or detected from its header (detect_separator). Ids and
    timestamps are read as text and converted here (_clean_ids, _time_as_float), so that a column whose
    values change form late in the file is read as a whole."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in LOG_SUFFIXES:
        raise DataError(f"{path}: unsupported log format {suffix!r}; expected one of {sorted(LOG_SUFFIXES)}")
    sep = None
    try:
        if LOG_SUFFIXES[suffix] is None:
            frame = pl.read_parquet(path)
            first_line = 0  # parquet has rows, not lines: row numbers count from 0
        else:
            sep = parse_separator(separator) if separator else detect_separator(path, LOG_SUFFIXES[suffix])
            # every column as text: "007" stays "007", and nothing is inferred from the first rows only
            frame = pl.read_csv(path, separator=sep, infer_schema_length=0)
            first_line = 2  # line 1 is the header
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        ragged = _first_ragged_line(path, sep) if LOG_SUFFIXES[suffix] is not None else None
        raise DataError(
            ragged or f"{path}: cannot read as {suffix[1:]}: {str(exc).splitlines()[0]}"
        ) from None
    frame = frame.rename({c: c.lstrip("\ufeff") for c in frame.columns if c.startswith("\ufeff")})  # a BOM
    if frame.height == 0:
        raise DataError(f"{path}: no rows (expected columns for user, item and timestamp)")
    u = _detect(frame.columns, user_col, USER_COLUMNS, "user", path)
    i = _detect(frame.columns, item_col, ITEM_COLUMNS, "item", path)
    t = _detect(frame.columns, time_col, TIME_COLUMNS, "timestamp", path)
    where = "line" if first_line else "row"
    frame = frame.select(pl.col(u).alias("user"), pl.col(i).alias("item"), pl.col(t).alias("time"))
    frame = frame.with_row_index("line", offset=first_line)
    for column, role in (("user", u), ("item", i), ("time", t)):
        nulls = frame.filter(pl.col(column).is_null())
        if nulls.height:
            raise DataError(f"{path}:{where} {nulls['line'][0]}: empty {role!r} ({nulls.height} such rows)")
    frame = frame.with_columns(_time_as_float(frame, t, path, where, time_format))
    frame, changes = _clean_ids(frame, {"user": u, "item": i}, path, where)
    return frame, first_line, changes


def _first_ragged_line(path: Path, separator: str) -> str | None:
    """The first line whose number of fields differs from the header's, as a message; None if all agree."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter=separator)
            width = len(next(rows, []))
            for row in rows:
                if row and len(row) != width:
                    return f"{path}:line {rows.line_num}: {len(row)} fields, but the header has {width}"
    except (UnicodeDecodeError, csv.Error) as error:
        return f"{path}: cannot read as text: {error}"
    return None


# what Python's str.strip() removes (Unicode whitespace plus the separators \x1c-\x1f), so that an id reads the
# same whichever of the two tools a user checks it with
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
MISSING_WORDS = ("nan", "none", "null", "na", "n/a", "")
FLOAT_WRITTEN_INTEGER = r"^-?[0-9]+\.0+$"  # "12.0": how pandas writes an integer column that had a NaN


def _clean_ids(
    frame: pl.DataFrame, names: dict[str, str], path: Path, where: str
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Ids as the user meant them: text ids lose surrounding spaces; a column of integers some of which are
    written as floats ("12.0") is read as integers; words that mean "missing" (NaN, null, ...) are refused,
    and so are nested, binary and non-integral float ids. Returns the frame and the counts of what changed."""
    changes: dict[str, int] = {}
    for column, name in names.items():
        values = frame[column]
        if values.dtype == pl.String:
            stripped = values.str.strip_chars(WHITESPACE)
            missing = frame.filter(stripped.str.to_lowercase().is_in(MISSING_WORDS))
            if missing.height:
                raise DataError(
                    f"{path}:{where} {missing['line'][0]}: {name!r} value {missing[column][0]!r} stands for a "
                    f"missing id ({missing.height} such rows); remove those rows or give them an id"
                )
            changes[f"{column}_ids_with_spaces"] = int((values != stripped).sum())
            floats = stripped.str.contains(FLOAT_WRITTEN_INTEGER)
            if floats.any() and (floats | stripped.str.contains(r"^-?[0-9]+$")).all():
                changes[f"{column}_ids_written_as_floats"] = int(floats.sum())
                stripped = stripped.str.replace(r"\.0+$", "")
            frame = frame.with_columns(stripped.alias(column))
        elif values.dtype.is_nested() or values.dtype == pl.Binary:
            raise DataError(
                f"{path}: {name!r} holds {values.dtype} values; expected one text or integer id per row"
            )
        elif values.dtype.is_float():
            bad = frame.filter(values.is_nan() | values.is_infinite() | (values != values.round(0)))
            if bad.height:
                raise DataError(
                    f"{path}:{where} {bad['line'][0]}: {name!r} value {bad[column][0]!r} is not an integer id "
                    f"({bad.height} such rows)"
                )
            frame = frame.with_columns(values.cast(pl.Int64))
    return frame, {k: v for k, v in changes.items() if v}


# day and month in either order: 03/04/2024, 3.4.2024, 03-04-2024 10:00
DAY_MONTH = r"^\s*([0-9]{1,2})([/.\-])([0-9]{1,2})[/.\-]([0-9]{4})(.*)$"


def _time_as_float(
    frame: pl.DataFrame, name: str, path: Path, where: str, time_format: str | None = None
) -> pl.Series:
    """Timestamps as float: numbers as they are, date-times as microseconds since the epoch. With
    `time_format` (strftime codes) every value must match it. Without, dates whose day and month could be
    read either way are read the only way the file allows (a first field above 12 is a day, a second above
    12 is a day), and refused when both ways fit every row."""
    column = frame["time"]
    dtype = column.dtype
    if dtype.is_numeric():
        values = column.cast(pl.Float64)
    elif dtype.is_temporal():
        values = column.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64)
    elif dtype == pl.String:
        column = column.str.strip_chars()
        as_number = column.cast(pl.Float64, strict=False)
        if time_format is None and as_number.null_count() == 0:
            values = as_number
        else:
            parsed = _parse_dates(column, name, path, time_format)
            bad = frame.filter(parsed.is_null())
            if bad.height:
                expected = (
                    f"a date-time in the form {time_format!r}" if time_format else "a number or a date-time"
                )
                raise DataError(
                    f"{path}:{where} {bad['line'][0]}: {name!r} value {bad['time'][0]!r} is not {expected} "
                    f"({bad.height} such rows)" + ("" if time_format else "; --time-format gives the form")
                )
            values = parsed.dt.epoch("us").cast(pl.Float64)
    else:
        raise DataError(f"{path}: timestamp column {name!r} has type {dtype}; expected numbers or date-times")
    for check, what in ((values.is_nan(), "NaN"), (values.is_infinite(), "infinite, not a time")):
        bad = frame.filter(check)
        if bad.height:
            raise DataError(f"{path}:{where} {bad['line'][0]}: {name!r} is {what} ({bad.height} such rows)")
    return values.alias("time")


def _parse_dates(column: pl.Series, name: str, path: Path, time_format: str | None) -> pl.Series:
    if time_format is not None:
        try:
            return column.str.to_datetime(format=time_format, strict=False, time_unit="us")
        except pl.exceptions.PolarsError as error:
            raise DataError(f"{path}: --time-format {time_format!r} cannot be used: {error}") from None
    parts = column.str.extract_groups(DAY_MONTH)
    if parts.struct.field("1").null_count() == 0:  # every value starts with day and month in some order
        first, second = (parts.struct.field(g).cast(pl.Int32) for g in ("1", "3"))
        day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
        if day_first == month_first:
            sep = parts.struct.field("2")[0]  # the advice writes the file's own separator: 1.2.2024, 1/2/2024
            day_month, month_day = f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"
            raise DataError(
                f"{path}: {name!r} values such as {column[0]!r} can be read day-first or month-first"
                + (" and the file has both" if day_first else "")
                + f"; say which with --time-format '{day_month}' or '{month_day}' (with the time part if there"
                f" is one, e.g. '{day_month} %H:%M')"
            )
        day, month = ("1", "3") if day_first else ("3", "1")
        iso = pl.concat_str(
            parts.struct.field("4"),
            pl.lit("-"),
            parts.struct.field(month).str.zfill(2),
            pl.lit("-"),
            parts.struct.field(day).str.zfill(2),
            parts.struct.field("5"),
        )
        column = pl.select(iso).to_series()
    try:
        return column.str.to_datetime(strict=False, time_unit="us")
    except pl.exceptions.ComputeError:
        # no single date format fits the column: numbers stay numbers, the rest is refused by the caller
        numbers = column.cast(pl.Float64, strict=False)
        finite = pl.select(pl.when(numbers.is_finite()).then(numbers)).to_series()  # inf/NaN: refused as well
        return finite.cast(pl.Datetime("us"))


def kcore_filter(frame: pl.DataFrame, k: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """Iteratively drop users and items with fewer than k events until both hold. Counts rows by reason."""
    dropped = {"rows_dropped_user_below_k": 0, "rows_dropped_item_below_k": 0, "kcore_iterations": 0}
    if k <= 1:
        return frame, dropped
    while True:
        user_n = pl.len().over("user")
        item_n = pl.len().over("item")
        flagged = frame.with_columns(user_ok=user_n >= k, item_ok=item_n >= k)
        bad_user = flagged.filter(~pl.col("user_ok")).height
        bad_item_only = flagged.filter(pl.col("user_ok") & ~pl.col("item_ok")).height
        if bad_user == 0 and bad_item_only == 0:
            return frame, dropped
        dropped["kcore_iterations"] += 1
        dropped["rows_dropped_user_below_k"] += bad_user
        dropped["rows_dropped_item_below_k"] += bad_item_only
        frame = flagged.filter(pl.col("user_ok") & pl.col("item_ok")).drop("user_ok", "item_ok")


def sequences_from_frame(frame: pl.DataFrame) -> tuple[list[np.ndarray], list[Any], list[Any]]:
    """Order events per user (users by first appearance, events by time, ties by line) and remap ids."""
    frame = frame.with_columns(first=pl.col("line").min().over("user")).sort(["first", "time", "line"])
    users = frame["user"].unique(maintain_order=True)
    items = frame["item"].unique(maintain_order=True)
    item_index = pl.DataFrame({"item": items, "iid": pl.int_range(1, items.len() + 1, eager=True)})
    frame = frame.join(item_index, on="item", how="left", maintain_order="left")
    flat = frame["iid"].to_numpy().astype(np.int64)
    boundaries = np.flatnonzero(frame["user"].ne(frame["user"].shift(1)).fill_null(True).to_numpy())
    sequences = np.split(flat, boundaries[1:])
    return sequences, users.to_list(), [None, *items.to_list()]


def read_interaction_log(
    path: str | Path,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    kcore: int = 5,
    name: str | None = None,
    separator: str | None = None,
    time_format: str | None = None,
) -> SequenceDataset:
    path = Path(path)
    frame, _, changes = read_log_table(path, user_col, item_col, time_col, separator, time_format)
    rows_read = frame.height
    users_read = frame["user"].n_unique()
    items_read = frame["item"].n_unique()
    frame, dropped = kcore_filter(frame, kcore)
    if frame.height == 0:
        raise DataError(
            f"{path}: no events left after {kcore}-core filtering ({rows_read} rows read); "
            "lower it with --kcore (1 turns it off)"
        )
    sequences, user_ids, item_ids = sequences_from_frame(frame)
    report = {
        "source": str(path),
        "format": "interaction_log",
        "kcore": kcore,
        "rows_read": rows_read,
        "rows_kept": frame.height,
        **dropped,
        "users_read": users_read,
        "users_kept": len(user_ids),
        "users_dropped": users_read - len(user_ids),
        "items_read": items_read,
        "items_kept": len(item_ids) - 1,
        "items_dropped": items_read - (len(item_ids) - 1),
        "one_item_users": int(sum(len(s) == 1 for s in sequences)),
        **changes,
    }
    return SequenceDataset(sequences, user_ids, item_ids, name=name or path.stem, report=report)
