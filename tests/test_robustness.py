"""Whatever a user feeds bsarec, the answer is a success with a documented meaning or an error of ours that
says where and what: Hypothesis-generated logs, benchmark files and item feature files against the readers,
settings against the config, and request bodies against the HTTP service. Never a raw traceback, never a 500."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bsarec.config import RunConfig
from bsarec.data.benchmark_format import read_benchmark_file
from bsarec.data.dataset import SequenceDataset
from bsarec.data.interaction_log import read_interaction_log
from bsarec.data.item_features import read_item_features
from bsarec.errors import ConfigError, DataError
from tests.conftest import extras_installed

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
CELL = st.one_of(
    st.sampled_from(
        ["a", " b ", "7", "7.0", "-3", "NaN", "null", "", "inf", "1e400", '"q', "x,y", "\ufeff1"]
    ),
    st.sampled_from(["2024-01-13", "03/04/2024", "13/01/2024", "01/13/2024 10:00", "3.4.2024", "yesterday"]),
    st.integers(-5, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


def write(text: str, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile(
        "w", suffix=suffix, delete=False, encoding="utf-8", newline=""
    ) as handle:
        handle.write(text)
    return Path(handle.name)


TIME = st.one_of(
    st.integers(0, 2**40).map(str),
    st.sampled_from(["2024-01-13", "03/04/2024", "13/01/2024", "01/13/2024 10:00", "1.5", "inf", "NaN", ""]),
)


@FAST
@given(
    header=st.sampled_from(
        [("user", "item", "ts"), ("user_id", "item_id", "timestamp"), ("\ufeffuser", "item", "date")]
    ),
    rows=st.lists(st.tuples(CELL, CELL, TIME), max_size=8),
    separator=st.sampled_from([",", "\t", ";"]),
)
def test_any_log_is_read_or_refused_with_the_file_named(header, rows, separator):
    lines = [separator.join(header), *(separator.join(row) for row in rows)]
    path = write("\n".join(lines) + "\n", ".csv")
    try:
        data = read_interaction_log(path, kcore=1)
    except DataError as error:
        assert str(path) in str(error)
    else:  # what was read has the documented meaning
        assert all(isinstance(u, str) and u == u.strip() and u for u in data.user_ids)
        assert not {str(u).lower() for u in data.user_ids} & {"nan", "null", "none", "na", "n/a"}
        assert data.report["rows_kept"] == sum(len(s) for s in data.sequences)
    finally:
        path.unlink()


@FAST
@given(lines=st.lists(st.lists(CELL, min_size=0, max_size=5).map(" ".join), max_size=8))
def test_any_benchmark_file_is_read_or_refused_with_the_line_named(lines):
    path = write("\n".join(lines) + "\n", ".txt")
    try:
        data = read_benchmark_file(path)
    except DataError as error:
        assert str(path) in str(error)
    else:  # only plain digits are ids (int() would also take "1_000", "+4" or other scripts' digits)
        assert all(t.isascii() and t.isdigit() for line in lines for t in line.removeprefix("\ufeff").split())
        assert all(len(s) and s.min() >= 1 for s in data.sequences) and data.n_items <= 10**8 + 1
    finally:
        path.unlink()


CATALOGUE = SequenceDataset([np.array([1, 2])], ["u"], [None, "a", "b", "7"])


@FAST
@given(
    header=st.sampled_from(
        [("item_id", "category"), ("item", "price", "tags"), ("sku", "x"), ("\ufeffid", "v")]
    ),
    rows=st.lists(st.lists(CELL, min_size=1, max_size=3), max_size=6),
    kind=st.sampled_from([".csv", ".tsv", ".json"]),
)
def test_any_item_features_file_is_read_or_refused_with_the_file_named(header, rows, kind):
    if kind == ".json":
        text = json.dumps({row[0]: row[1:] for row in rows}) if rows else "{}"
    else:
        separator = "\t" if kind == ".tsv" else ","
        text = "\n".join([separator.join(header), *(separator.join(row) for row in rows)]) + "\n"
    path = write(text, kind)
    try:
        features = read_item_features(path, CATALOGUE)
    except DataError as error:
        assert str(path) in str(error)
    else:  # every field covers the catalogue, and a missing value is never a value
        for field in features.categorical:
            assert len(field.offsets) == CATALOGUE.n_items + 1 and all(v.strip() for v in field.vocabulary)
        for field in features.dense:
            assert np.isfinite(field.vectors).all() and not field.present[0]
        report = features.report["files"][0]
        assert report["matched_items"] <= 3 and report["rows_for_unknown_items"] >= 0
    finally:
        path.unlink()


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)


@FAST
@given(
    changes=st.dictionaries(st.sampled_from([*RunConfig.__dataclass_fields__, "colour"]), VALUES, max_size=4)
)
def test_any_settings_give_a_config_or_a_config_error_naming_the_field(changes):
    try:
        config = RunConfig.from_dict(changes)
    except ConfigError as error:
        assert any(name in str(error) for name in [*changes, "colour"]) or "num_heads" in str(error)
    else:
        assert math.isfinite(config.lr) and config.lr > 0 and config.epochs >= 1


@pytest.fixture(scope="module")
def client(tiny_run):
    if not extras_installed("serve"):
        pytest.skip("needs pip install 'bsarec[serve]'")
    from fastapi.testclient import TestClient

    from bsarec.serving.app import create_app

    app = create_app(tiny_run, threads=None)
    torch.set_flush_denormal(False)  # the app sets it for its worker process; Hypothesis needs IEEE floats
    return TestClient(app)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_subnormal=False),
        st.sampled_from([float("inf"), float("nan"), 1.0, 3, "c00-i01"]),
        st.text(max_size=8),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/recommend", "/recommend/batch"]),
    body=st.dictionaries(
        st.sampled_from(["items", "histories", "k", "exclude_seen", "allow", "deny", "other"]), JSON_VALUES
    ),
)
@pytest.mark.slow
def test_any_request_body_gets_an_answer_never_a_500(client, path, body):
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")


LAYOUT_TABLE = "item,colour,price\na,red,1\nb,blue,2\n7,red,3\n"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    path = tmp_path_factory.mktemp("layout") / "items.csv"
    path.write_text(LAYOUT_TABLE)
    return read_item_features(path, CATALOGUE)


@FAST
@given(
    header=st.sampled_from(
        [("item", "colour", "price"), ("item", "price"), ("item", "colour", "size"), ("id", "colour")]
    ),
    rows=st.lists(st.lists(CELL, min_size=1, max_size=3), max_size=5),
)
def test_any_new_items_file_is_read_in_the_trained_layout_or_refused(layout, header, rows):
    text = "\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n"
    path = write(text, ".csv")
    try:
        ids = [r[0].strip() for r in rows]
        arrivals = SequenceDataset([], [], [None, *dict.fromkeys(i for i in ids if i)])
        new = read_item_features(path, arrivals, layout=layout)
    except DataError as error:
        assert str(path) in str(error)
    else:  # only the model's fields, of the model's kinds, with values its arithmetic can carry
        assert set(new.names) <= set(layout.names) and set(header[1:]) <= set(layout.names)
        for field in new.dense:
            assert field.standardised and np.isfinite(field.vectors).all()
            assert (field.shift, field.scale) == (layout.dense[0].shift, layout.dense[0].scale)
            assert np.abs(field.vectors).max(initial=0) <= 1e6
    finally:
        path.unlink()


@FAST
@given(
    matrix=st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=3),
        min_size=1,
        max_size=4,
    ),
    ids=st.lists(st.sampled_from(["a", "b", "7", "", " ", "zz", "a"]), min_size=1, max_size=4),
    named=st.booleans(),
)
def test_any_vectors_file_is_read_or_refused_with_the_file_named(matrix, ids, named):
    width = len(matrix[0])
    array = np.array([row[:width] + [0.0] * (width - len(row)) for row in matrix], dtype=np.float64)
    folder = Path(tempfile.mkdtemp())
    np.save(folder / "emb.npy", array)
    (folder / "emb.ids.txt").write_text("\n".join(ids) + "\n")
    try:
        features = read_item_features(
            f"text={folder / 'emb.npy'}" if named else folder / "emb.npy", CATALOGUE
        )
    except DataError as error:
        assert str(folder) in str(error)
    else:
        (field,) = features.dense
        assert field.name == ("text" if named else "emb") and np.isfinite(field.vectors).all()
        assert np.abs(array).max() <= 1e6 and len(ids) == len(array)
    finally:
        shutil.rmtree(folder)


PREPARED_FILES = ("sequences.npz", "id_maps.json", "dataset.json")


@FAST
@given(
    damage=st.dictionaries(
        st.sampled_from(PREPARED_FILES),
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"{}", b"[]", b'{"users": [], "items": [null]}', b"null"]),
        ),
        max_size=3,
    ),
    missing=st.sets(st.sampled_from(PREPARED_FILES), max_size=2),
)
def test_any_prepared_directory_is_loaded_or_refused_with_the_file_named(damage, missing):
    folder = Path(tempfile.mkdtemp())
    SequenceDataset([np.array([1, 2, 3]), np.array([2, 3])], ["u", "v"], [None, "a", "b", "c"]).save(folder)
    for name, content in damage.items():
        (folder / name).write_bytes(content)
    for name in missing:
        (folder / name).unlink()
    try:
        data = SequenceDataset.load(folder)
    except DataError as error:
        assert str(folder) in str(error)
    else:  # what loads is a consistent dataset
        assert all(len(s) == 0 or (s.min() >= 1 and s.max() < data.n_items) for s in data.sequences)
        assert len(data.sequences) == len(data.user_ids) and data.item_ids[0] is None
    finally:
        shutil.rmtree(folder)


RUN_FILES = ("config.json", "identity.json", "metrics.json", "model.safetensors", "dataset/id_maps.json")


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(RUN_FILES),
    cut=st.integers(0, 400),
    noise=st.binary(min_size=0, max_size=8),
)
def test_any_damaged_run_is_loaded_or_refused_with_the_file_named(tiny_run, name, cut, noise):
    from bsarec import SequentialRecommender
    from bsarec.errors import NonFiniteError

    folder = Path(tempfile.mkdtemp()) / "run"
    shutil.copytree(tiny_run, folder)
    original = (folder / name).read_bytes()
    (folder / name).write_bytes(original[:cut] + noise + original[cut + len(noise) :])
    try:
        rec = SequentialRecommender.load(folder)
    except (DataError, ConfigError, NonFiniteError) as error:
        assert str(folder) in str(error)
    else:  # a change that kept the run whole: it scores as the run does
        assert len(rec.recommend(items=["c00-i01"], k=3).items) == 3
    finally:
        shutil.rmtree(folder.parent)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/recommend", "/recommend/batch"]),
    body=st.dictionaries(
        st.sampled_from(["items", "histories", "k", "where", "allow", "deny", "wher", "exclude_seen"]),
        st.one_of(
            JSON_VALUES, st.dictionaries(st.sampled_from(["colour", "size", ""]), JSON_VALUES, max_size=2)
        ),
    ),
)
def test_any_request_with_the_new_fields_gets_an_answer_never_a_500(client, path, body):
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if "wher" in body:  # an unknown field is never ignored
        assert response.status_code == 422
