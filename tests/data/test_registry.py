import hashlib
import io
import urllib.error
import zipfile

import pytest

from bsarec.data import registry
from bsarec.data.registry import REGISTRY, RegisteredDataset, dataset_name, resolve_dataset
from bsarec.data.split import leave_one_out
from bsarec.errors import DataError
from tests.conftest import SHARED_DATA

needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "LastFM.txt").is_file(), reason="../shared/data not present"
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BSAREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BSAREC_DATA_DIR", raising=False)
    return tmp_path / "cache"


def test_registry_has_the_six_datasets_and_four_checksums():
    assert set(REGISTRY) == {"Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp", "LastFM", "ML-1M"}
    assert sum(e.sha256 is not None for e in REGISTRY.values()) == 4


@needs_shared
def test_name_resolves_through_data_dir_with_checksum(cache):
    data = resolve_dataset("lastfm", SHARED_DATA, download=False)
    assert data.name == "LastFM" and data.num_users == 1090 and data.num_interactions == 52551
    assert dataset_name(SHARED_DATA / "LastFM.txt") == "LastFM"


@needs_shared
def test_env_data_dir(cache, monkeypatch):
    monkeypatch.setenv("BSAREC_DATA_DIR", str(SHARED_DATA))
    assert resolve_dataset("LastFM", download=False).num_users == 1090


def test_existing_path_wins(cache, write):
    path = write("LastFM", "1 1 2 3\n")  # a file literally named like the dataset
    assert resolve_dataset(str(path), download=False).num_users == 1


def test_checksum_mismatch_is_an_error(cache, tmp_path):
    (tmp_path / "LastFM.txt").write_text("1 1 2 3\n")
    with pytest.raises(DataError, match="does not match the published LastFM file"):
        resolve_dataset("LastFM", tmp_path, download=False)


def test_offline_error_says_what_to_do(cache, monkeypatch):
    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(registry, "_fetch", offline)
    with pytest.raises(DataError) as info:
        resolve_dataset("Beauty")
    message = str(info.value)
    assert "download failed" in message and "--data-dir" in message and str(cache / "Beauty.txt") in message


def test_download_checks_the_checksum_and_writes_atomically(cache, tmp_path, monkeypatch):
    payload = b"1 1 2 3\n2 2 3\n"
    source = tmp_path / "remote.txt"
    source.write_bytes(payload)
    good = RegisteredDataset("Tiny", "Tiny.txt", source.as_uri(), hashlib.sha256(payload).hexdigest(), "test")
    monkeypatch.setitem(REGISTRY, "Tiny", good)
    assert resolve_dataset("Tiny").num_users == 2
    assert (cache / "Tiny.txt").read_bytes() == payload
    assert [p.name for p in cache.iterdir()] == ["Tiny.txt"]  # no temp files left behind
    bad = RegisteredDataset("Bad", "Bad.txt", source.as_uri(), "0" * 64, "test")
    monkeypatch.setitem(REGISTRY, "Bad", bad)
    with pytest.raises(DataError, match="expected 0000"):
        resolve_dataset("Bad")
    assert not (cache / "Bad.txt").exists()


RATINGS = "2::20::5::300\n1::10::3::200\n1::30::4::100\n2::10::1::300\n"


def test_ml1m_preprocessing_from_ratings(cache, tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("ml-1m/ratings.dat", RATINGS)
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(buffer.getvalue())
    data = resolve_dataset(str(archive))
    # users by id; each user's ratings by time, ties in file order; no rating threshold
    assert data.user_ids == [1, 2]
    assert [[data.item_ids[i] for i in s] for s in data.sequences] == [[30, 10], [20, 10]]
    monkeypatch.setattr(registry, "_fetch", lambda url: archive.read_bytes())
    fetched = resolve_dataset("ML-1M")
    assert [s.tolist() for s in fetched.sequences] == [[1, 2], [3, 2]]  # cached in the benchmark format
    assert (cache / "ML-1M.txt").is_file()


def test_unknown_name(cache):
    with pytest.raises(DataError, match="known dataset name"):
        resolve_dataset("NoSuchData")


def test_kcore_is_for_raw_logs_only(write):
    with pytest.raises(DataError, match="raw logs only"):
        resolve_dataset(str(write("d.txt", "1 1 2\n")), kcore=5)


@needs_shared
@pytest.mark.slow
def test_tvrec_samples_count_as_its_reference_on_beauty(cache):
    """TV-Rec's reference trains on 128,031 Beauty samples (its training log) where BSARec's protocol builds 150,258."""
    beauty = resolve_dataset("Beauty", SHARED_DATA, download=False)
    assert len(leave_one_out(beauty, 50, train_samples="prefixes").train_targets) == 150_258
    assert len(leave_one_out(beauty, 50, train_samples="nonempty").train_targets) == 128_031
