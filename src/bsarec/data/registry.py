"""The paper's six datasets by name, and how `--dataset NAME|PATH` is resolved.

Resolution order for a name: an existing path; `<data_dir>/<file>` where data_dir is `--data-dir` or
`$BSAREC_DATA_DIR`; the user cache (`$BSAREC_CACHE_DIR`, else `$XDG_CACHE_HOME/bsarec`, else
`~/.cache/bsarec`); a download from the public source with a progress bar, a checksum check and an atomic
write into the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bsarec.data.benchmark_format import read_benchmark_file, write_benchmark_file
from bsarec.data.dataset import SequenceDataset
from bsarec.data.interaction_log import is_interaction_log, read_interaction_log
from bsarec.data.synthetic import generate_synthetic
from bsarec.errors import ConfigError, DataError
from bsarec.io import atomic_write_bytes

S3REC_DATA = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data"


@dataclass(frozen=True)
class RegisteredDataset:
    name: str
    filename: str
    url: str
    sha256: str | None  # of the preprocessed file; None where no published checksum is known to us
    source: str
    raw_url: str | None = None  # ML-1M is built from GroupLens' raw ratings
    # the S3-Rec item attributes published beside the file ({"item id": [attribute ids]}), when there are any
    attributes: bool = False
    attributes_sha256: str | None = None

    def attributes_entry(self) -> RegisteredDataset:
        """The attribute file as a registered download of its own (same source, same checks)."""
        if not self.attributes:
            raise DataError(f"{self.name}: no item attributes were published with this dataset")
        filename = f"{self.name}_item2attributes.json"
        return RegisteredDataset(
            f"{self.name} item attributes",
            filename,
            f"{S3REC_DATA}/{filename}",
            self.attributes_sha256,
            self.source,
        )


REGISTRY: dict[str, RegisteredDataset] = {
    d.name: d
    for d in [
        RegisteredDataset(
            "Beauty",
            "Beauty.txt",
            f"{S3REC_DATA}/Beauty.txt",
            "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
            "Amazon reviews 5-core (McAuley et al.), S3-Rec preprocessing",
            attributes=True,
            attributes_sha256="129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
        ),
        RegisteredDataset(
            "Sports_and_Outdoors",
            "Sports_and_Outdoors.txt",
            f"{S3REC_DATA}/Sports_and_Outdoors.txt",
            "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
            "Amazon reviews 5-core (McAuley et al.), S3-Rec preprocessing",
            attributes=True,
            attributes_sha256="7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
        ),
        RegisteredDataset(
            "Toys_and_Games",
            "Toys_and_Games.txt",
            f"{S3REC_DATA}/Toys_and_Games.txt",
            None,
            "Amazon reviews 5-core (McAuley et al.), S3-Rec preprocessing",
            attributes=True,
            attributes_sha256=None,
        ),
        RegisteredDataset(
            "Yelp",
            "Yelp.txt",
            f"{S3REC_DATA}/Yelp.txt",
            "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
            "Yelp dataset challenge, S3-Rec preprocessing",
            attributes=True,
            attributes_sha256="f25acd5e1e680e0b22fd4e3f4fb6be4b2a7461e9222610616e3e1ee6702dd58d",
        ),
        RegisteredDataset(
            "LastFM",
            "LastFM.txt",
            f"{S3REC_DATA}/LastFM.txt",
            "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802",
            "HetRec 2011 Last.fm (GroupLens), S3-Rec preprocessing",
            attributes=True,
            attributes_sha256="a4ccd678dc9ff6d43fe5073f491db5c9b02eb98dfa4f8c0382913a784be217ef",
        ),
        RegisteredDataset(
            "ML-1M",
            "ML-1M.txt",
            "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
            None,
            "MovieLens 1M ratings (GroupLens): each user's ratings by timestamp, no rating threshold",
            raw_url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        ),
    ]
}


def cache_dir() -> Path:
    if os.environ.get("BSAREC_CACHE_DIR"):
        return Path(os.environ["BSAREC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bsarec"


def lookup(name: str) -> RegisteredDataset | None:
    lowered = {k.lower(): v for k, v in REGISTRY.items()}
    return lowered.get(name.lower())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_path(
    path: str | Path, kcore: int | None = None, name: str | None = None, **log_columns
) -> SequenceDataset:
    """Load a prepared dataset directory, a benchmark .txt file, or a raw CSV/TSV/Parquet log."""
    path = Path(path)
    prepared = SequenceDataset.is_prepared_dir(path)
    if kcore not in (None, 1) and (prepared or path.name == "ratings.dat" or path.suffix.lower() == ".zip"):
        what = "a prepared dataset" if prepared else "ML-1M, which is built with its own preprocessing"
        raise DataError(f"{path}: --kcore {kcore} applies to raw logs only, and this is {what}")
    if prepared:
        return SequenceDataset.load(path)
    if path.is_dir():
        raise DataError(f"{path}: a directory, but not a prepared dataset (no sequences.npz)")
    if path.name == "ratings.dat":
        return ml1m_from_ratings(path)
    if path.suffix.lower() == ".zip":
        return _ml1m_from_zip(path.read_bytes(), str(path))
    if is_interaction_log(path):
        return read_interaction_log(path, kcore=5 if kcore is None else kcore, name=name, **log_columns)
    if kcore not in (None, 0, 1):
        raise DataError(
            f"{path}: k-core filtering applies to raw logs only (got kcore={kcore}); "
            "the benchmark files are already filtered"
        )
    return read_benchmark_file(path, name=name)


def dataset_name(spec: str | Path) -> str:
    """The name presets are looked up by: a registry name, or a file's stem (LastFM.txt -> LastFM)."""
    path = Path(spec)
    if path.exists():
        return path.name if path.is_dir() else path.stem
    entry = lookup(str(spec))
    return entry.name if entry else str(spec)


def resolve_dataset(
    spec: str | Path,
    data_dir: str | Path | None = None,
    download: bool = True,
    kcore: int | None = None,
    **log_columns,
) -> SequenceDataset:
    """Turn `--dataset NAME|PATH` into a dataset, following the documented resolution order."""
    if kcore is not None and (isinstance(kcore, bool) or not isinstance(kcore, int) or kcore < 1):
        raise ConfigError(f"kcore: must be an integer >= 1 (1 turns the filter off), got {kcore!r}")
    path = Path(spec)
    if path.exists():
        return load_path(path, kcore=kcore, **log_columns)
    if str(spec) == "synthetic":
        return generate_synthetic()
    entry = lookup(str(spec))
    if entry is None:
        raise DataError(
            f"{spec}: neither an existing file or directory nor a known dataset name "
            f"(known: synthetic, {', '.join(REGISTRY)})"
        )
    return read_benchmark_file(locate(entry, data_dir, download), name=entry.name)


def locate(entry: RegisteredDataset, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Find (or fetch) the preprocessed file of a registered dataset and verify its checksum."""
    data_dir = data_dir or os.environ.get("BSAREC_DATA_DIR")
    candidates = [Path(data_dir) / entry.filename] if data_dir else []
    candidates.append(cache_dir() / entry.filename)
    for candidate in candidates:
        if candidate.is_file():
            verify(entry, candidate)
            return candidate
    target = cache_dir() / entry.filename
    if not download:
        raise DataError(_offline_help(entry, target, "downloads are turned off"))
    try:
        if entry.raw_url:
            _build_ml1m(entry, target)
        else:
            _download(entry.url, target, entry.sha256)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataError(_offline_help(entry, target, f"download failed: {exc}")) from None
    return target


def locate_attributes(dataset: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The S3-Rec item attribute file of a registered dataset, found or fetched like the dataset itself."""
    entry = lookup(dataset)
    if entry is None:
        raise DataError(
            f"item features 'attributes': {dataset!r} is not a registered dataset; give the file's path"
        )
    return locate(entry.attributes_entry(), data_dir, download)


def verify(entry: RegisteredDataset, path: Path) -> None:
    if entry.sha256 is None:
        return
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise DataError(
            f"{path}: sha256 {actual} does not match the published {entry.name} file ({entry.sha256}); "
            "delete it to re-download, or pass the path itself as --dataset to use it unchecked"
        )


def _offline_help(entry: RegisteredDataset, target: Path, reason: str) -> str:
    return (
        f"{entry.name}: not found locally and {reason}.\n"
        f"  Get {entry.url} on a machine with network access, then either\n"
        f"  - put it at {target}, or\n"
        f"  - put it in a directory and pass --data-dir DIR (or set BSAREC_DATA_DIR), or\n"
        f"  - pass the file's path as --dataset."
        + (
            "\n  For ML-1M the zip itself (or its ratings.dat) can be passed as --dataset."
            if entry.raw_url
            else ""
        )
    )


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}") as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                chunks.append(block)
                bar.update(len(block))
    return b"".join(chunks)


def _download(url: str, target: Path, sha256: str | None) -> None:
    data = _fetch(url)
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        raise DataError(f"{url}: downloaded file has sha256 {actual}, expected {sha256}; not saved")
    atomic_write_bytes(target, data)


def ml1m_from_ratings(ratings: bytes | str | Path, name: str = "ML-1M") -> SequenceDataset:
    """GroupLens `ratings.dat` (UserID::MovieID::Rating::Timestamp) to sequences: every rating is an
    interaction (no threshold); each user's ratings sorted by timestamp, ties in file order; users by id."""
    text = ratings if isinstance(ratings, bytes) else Path(ratings).read_bytes()
    users: dict[int, list[tuple[int, int, int]]] = {}
    for line_no, line in enumerate(text.decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 4:
            raise DataError(
                f"ratings.dat:{line_no}: expected UserID::MovieID::Rating::Timestamp, got {line!r}"
            )
        try:
            user, movie, _, stamp = (int(p) for p in parts)
        except ValueError:
            raise DataError(f"ratings.dat:{line_no}: non-integer field in {line!r}") from None
        users.setdefault(user, []).append((stamp, line_no, movie))
    item_index: dict[int, int] = {}
    sequences, user_ids = [], []
    for user in sorted(users):
        events = sorted(users[user])
        seq = [item_index.setdefault(movie, len(item_index) + 1) for _, _, movie in events]
        sequences.append(np.asarray(seq, dtype=np.int64))
        user_ids.append(user)
    item_ids = [None, *item_index]
    return SequenceDataset(sequences, user_ids, item_ids, name=name, report={"format": "ml-1m ratings.dat"})


def _build_ml1m(entry: RegisteredDataset, target: Path) -> None:
    dataset = _ml1m_from_zip(_fetch(entry.raw_url or entry.url), entry.raw_url or entry.url)
    # Like the other benchmark files, the cached file holds internal item ids 1..N.
    write_benchmark_file(dataset, target)


def _ml1m_from_zip(archive: bytes, where: str) -> SequenceDataset:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            member = next((n for n in zipped.namelist() if n.endswith("ratings.dat")), None)
            if member is None:
                raise DataError(f"{where}: no ratings.dat in the archive")
            return ml1m_from_ratings(zipped.read(member))
    except zipfile.BadZipFile:
        raise DataError(f"{where}: not a zip archive") from None
