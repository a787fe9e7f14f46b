"""Batch scoring: histories from a CSV or Parquet file to top-k recommendations in a Parquet file, in chunks.

Input: one row per history. The `items` column holds the history, oldest first: a list column (Parquet) or a
space-separated string (CSV or Parquet). An id column (`id`, `user`, `user_id` or `request_id`, or the one
named) is copied to the output; without one, the output numbers the rows from 0. The file is read in chunks
of `chunk_rows` rows (pyarrow's streaming readers), scored and appended to the output, so memory stays bounded
by one chunk whatever the file size. The output is written to a temporary file and renamed at the end: an
interrupted run leaves no half-written output.

Output columns: id, items (list), scores (list of float32), unknown (the history's ids not in the catalogue),
empty_history (true when nothing of the history was known: the answer for an empty sequence).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bsarec.errors import ConfigError, DataError

ID_COLUMNS = ("id", "user", "user_id", "request_id")


def _chunks(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    elif suffix in (".csv", ".tsv", ".txt"):
        delimiter = "\t" if suffix == ".tsv" else ","
        header = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter)).schema.names
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
        )
        for batch in reader:
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)
    else:
        raise DataError(f"{path}: expected a .csv, .tsv or .parquet file of histories")


def _readable(batches: Iterator[pa.RecordBatch], path: Path) -> Iterator[pa.RecordBatch]:
    """The batches, with a reader's complaint (ragged rows, an empty file, bytes that are not UTF-8) as a
    DataError that names the file."""
    try:
        yield from batches
    except (pa.ArrowException, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the histories: {error}") from None


def _histories(column: pa.Array, path: Path, name: str, first_row: int) -> list[list[Any]]:
    values = column.to_pylist()
    out = []
    for offset, value in enumerate(values):
        where = f"{path}: row {first_row + offset}, column {name!r}"
        if value is None:
            out.append([])
        elif isinstance(value, str):
            if "\n" in value or "\r" in value:  # quoted text across lines: an unclosed quote merged rows
                raise DataError(f"{where}: the history spans several lines; is a quote left open?")
            out.append(value.split())
        elif isinstance(value, list):
            out.append([_item_id(v, where) for v in value if v is not None])
        else:
            raise DataError(
                f"{path}: row {first_row + offset}, column {name!r}: expected a list or a space-separated "
                f"string of item ids, got {type(value).__name__}"
            )
    return out


def _item_id(value: Any, where: str) -> Any:
    """A list element as an item id: text or an integer; an integral float (a list<double> column) is that
    integer, anything else is refused rather than silently matching no item."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"{where}: item id {value!r} is neither text nor an integer")
    return value


def check_output_file(output: Path, source: Path | None = None) -> None:
    """Refuse an output that would replace the input, is not a Parquet file by name, is a directory, or lies
    in a directory that does not exist: each would lose data or leave a file no one can find by its name."""
    if output.suffix.lower() not in (".parquet", ".pq"):
        raise ConfigError(
            f"--output {output}: recommendations are written as Parquet; name the file *.parquet"
        )
    if output.is_dir():
        raise ConfigError(f"--output {output}: a directory; give the path of a .parquet file")
    if not output.parent.is_dir():
        raise ConfigError(f"--output {output}: its directory {output.parent} does not exist")
    if source is not None and output.resolve() == source.resolve():
        raise ConfigError(f"--output {output}: the same file as --input; it would replace the histories")


def score_file(
    recommender: Any,
    input_path: str | Path,
    output_path: str | Path,
    k: int = 20,
    exclude_seen: bool = True,
    items_column: str = "items",
    id_column: str | None = None,
    chunk_rows: int = 10_000,
    progress: bool = True,
    where: dict[str, list[Any]] | None = None,
) -> dict[str, int]:
    """Score every history of `input_path` with a loaded `SequentialRecommender`; returns counts. `where`
    restricts the answers by item feature values, as in `recommend`."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise DataError(f"{input_path}: no such file")
    check_output_file(output_path, input_path)
    # integer ids stay integers; a catalogue of text ids, or of both (items added after training), is text
    as_text = not all(isinstance(i, int) for i in recommender.dataset.item_ids[1:])
    item_type = pa.string() if as_text else pa.int64()
    temporary = output_path.with_name(f".{output_path.name}.tmp-{os.getpid()}")
    writer = None
    counts = {"histories": 0, "empty_histories": 0, "unknown_items": 0}
    bar = tqdm(desc="scoring", unit="histories", disable=not progress)
    try:
        for batch in _readable(_chunks(input_path, chunk_rows), input_path):
            names = batch.schema.names
            if items_column not in names:
                raise DataError(
                    f"{input_path}: no column {items_column!r} (columns: {names}); use --items-col"
                )
            ids_name = id_column or next((c for c in ID_COLUMNS if c in names), None)
            if id_column is not None and id_column not in names:
                raise DataError(f"{input_path}: no id column {id_column!r} (columns: {names})")
            first = counts["histories"]
            histories = _histories(batch.column(items_column), input_path, items_column, first)
            results = recommender.recommend_batch(histories, k=k, exclude_seen=exclude_seen, where=where)
            ids = (
                [None if v is None else str(v) for v in batch.column(ids_name).to_pylist()]
                if ids_name
                else [str(first + i) for i in range(len(histories))]
            )
            table = pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "items": pa.array(
                        [[str(i) for i in r.items] if as_text else r.items for r in results],
                        pa.list_(item_type),
                    ),
                    "scores": pa.array([r.scores for r in results], pa.list_(pa.float32())),
                    "unknown": pa.array(
                        [[str(u) for u in r.unknown] for r in results], pa.list_(pa.string())
                    ),
                    "empty_history": pa.array([r.empty_history for r in results], pa.bool_()),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table)
            counts["histories"] += len(histories)
            counts["empty_histories"] += sum(r.empty_history for r in results)
            counts["unknown_items"] += sum(len(r.unknown) for r in results)
            bar.update(len(histories))
        if writer is None:
            raise DataError(f"{input_path}: no histories to score")
        writer.close()
        writer = None
        os.replace(temporary, output_path)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    return counts
