"""The `bsarec` command line: a thin layer over the Python API (api.py, experiments/, serving/, tuning/,
analysis/). Commands that need an optional extra say which one to install."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from bsarec.analysis.report import analyze as run_analysis
from bsarec.api import SequentialRecommender
from bsarec.config import parse_overrides, resolve_config
from bsarec.data.item_features import reading_table, resolve_item_features, split_field_name
from bsarec.data.prepared import FEATURES_DIR, check_output, save_prepared
from bsarec.data.registry import dataset_name, resolve_dataset
from bsarec.distributed import leave_process_group
from bsarec.errors import ConfigError, DataError, MissingExtra, NonFiniteError
from bsarec.experiments import BenchmarkGrid, demo_report, run_demo, run_speed_benchmark
from bsarec.extras import require, require_extra
from bsarec.io import atomic_write_json
from bsarec.models import MODELS
from bsarec.runs import read_run_item_features
from bsarec.serving.batch import check_output_file, score_file
from bsarec.serving.engine import choose_engine
from bsarec.serving.export import export_run
from bsarec.tuning.search import tune as run_tune

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Sequential recommendation with BSARec and its baselines, under the paper's protocol.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect and prepare datasets.")
app.add_typer(data_app, name="data")


def _setup_logging(quiet: bool = False) -> None:
    logger = logging.getLogger("bsarec")
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        for h in logger.handlers
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _launch_torchrun(
    nproc: int, threads: int | None, output: Path | None, resume: Path | None, model: str, dataset: str
) -> int:
    """Run this same `bsarec train` command under torchrun with `nproc` processes on this machine, each with
    its share of the cores unless --threads says otherwise; every process gets the same run directory."""
    args = sys.argv[sys.argv.index("train") + 1 :]
    for i, arg in enumerate(args):  # drop --nproc N / --nproc=N, so that the workers train
        if arg == "--nproc":
            del args[i : i + 2]
            break
        if arg.startswith("--nproc="):
            del args[i]
            break
    if threads is None:
        args += ["--threads", str(max(1, (os.cpu_count() or 1) // nproc))]
    if output is None and resume is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args += ["--output", str(Path("runs") / f"{model}-{Path(dataset).stem}-{stamp}")]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return subprocess.call([*command, "-m", "bsarec", "train", *args])


TRACK_HELP = (
    "log to an experiment tracker: tensorboard or mlflow (repeatable; --set track_uri=URI for MLflow)"
)
ITEM_FEATURES_HELP = (
    "item side information (repeatable): S3-Rec attribute JSON, item table (CSV/TSV/Parquet), NumPy vectors "
    "(NAME.npy + NAME.ids.txt), a saved features directory, or 'attributes' (a registered dataset's S3-Rec file)"
)


def _feature_options(item_id_col: str | None, categorical: list[str], multi_separator: str) -> dict[str, Any]:
    return {"id_column": item_id_col, "categorical": tuple(categorical), "multi_separator": multi_separator}


def _with_tracking(
    overrides: dict[str, Any], track: list[str], experiment: str | None = None
) -> dict[str, Any]:
    """--track (repeatable) as the `track` setting; `experiment` groups a grid's or a study's runs in MLflow."""
    if track:
        if "track" in overrides:
            raise ConfigError("trackers are given twice (--track and --set track); give them one way")
        overrides = {**overrides, "track": ",".join(track)}
    if overrides.get("track") and experiment and "track_experiment" not in overrides:
        overrides["track_experiment"] = experiment
    return overrides


def _bars(progress: bool) -> bool:
    """Progress bars only where someone watches them: on a terminal. Redirected to a file, a bar would write a
    carriage-return fragment per redraw; training logs a plain line per epoch (and every 30 s) instead."""
    return progress and sys.stderr.isatty()


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    typer.echo(f"{title}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


@app.command()
def train(
    model: str | None = typer.Option(
        None, "--model", "-m", help=", ".join(MODELS) + " (default: a preset file's model, else bsarec)"
    ),
    dataset: str = typer.Option(
        "synthetic", "--dataset", "-d", help="a dataset name (LastFM, Beauty, ...), a file, or a directory"
    ),
    data_dir: Path | None = typer.Option(
        None, help="directory holding the benchmark files [env BSAREC_DATA_DIR]"
    ),
    preset: str | None = typer.Option(
        None,
        help="'paper' (the paper's settings for the dataset), 'best' (ours, chosen on validation) or a JSON file",
    ),
    set_: list[str] = typer.Option([], "--set", help="override a setting: --set key=value (repeatable)"),
    seed: int | None = typer.Option(None, help="random seed (default 42)"),
    epochs: int | None = typer.Option(None, help="maximum epochs (default 200)"),
    output: Path | None = typer.Option(None, help="run directory (default runs/MODEL-DATASET-TIME)"),
    kcore: int | None = typer.Option(None, help="k-core filter for raw logs (default 5; 1 turns it off)"),
    user_col: str | None = typer.Option(None, help="user column of a raw log (default: detected)"),
    item_col: str | None = typer.Option(None, help="item column of a raw log (default: detected)"),
    time_col: str | None = typer.Option(None, help="timestamp column of a raw log (default: detected)"),
    separator: str | None = typer.Option(
        None, help="separator of a raw CSV/TSV log: one character, comma, tab, ... (default: detected)"
    ),
    time_format: str | None = typer.Option(
        None,
        help="form of a raw log's date-times, strftime codes such as '%m/%d/%Y %H:%M' (default: detected)",
    ),
    item_features: list[str] = typer.Option([], help=ITEM_FEATURES_HELP),
    item_id_col: str | None = typer.Option(None, help="item id column of an item table (default: detected)"),
    categorical: list[str] = typer.Option(
        [], help="read this numeric column of an item table as categories (repeatable)"
    ),
    multi_separator: str = typer.Option("|", help="separator of several values in one text cell"),
    threads: int | None = typer.Option(None, help="torch threads (default: all cores)"),
    device: str | None = typer.Option(None, help="cpu (default), cuda or auto"),
    resume: Path | None = typer.Option(
        None,
        help="continue this interrupted run from its newest checkpoint, with its own settings (only runtime ones "
        "such as --threads, --device, --set checkpoint_steps=N may change)",
    ),
    overwrite: bool = typer.Option(False, help="replace the run already in --output (never other files)"),
    progress: bool = typer.Option(
        True, help="show a progress bar (on a terminal; a redirected log gets plain lines instead)"
    ),
    nproc: int = typer.Option(
        1, help="processes to train with (DistributedDataParallel through torchrun; gloo on CPU, nccl on GPU)"
    ),
    track: list[str] = typer.Option([], help=TRACK_HELP),
) -> None:
    """Train a model with early stopping on validation NDCG@20, then evaluate on test once."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_launch_torchrun(nproc, threads, output, resume, model or "bsarec", dataset))
    main_process = os.environ.get("RANK", "0") == "0"
    _setup_logging(quiet=not main_process)
    overrides = _with_tracking(parse_overrides(set_), track)
    runtime = {"threads": threads, "device": device, "data_dir": str(data_dir) if data_dir else None}
    if resume is not None:
        fixed = {"--preset": preset, "--seed": seed, "--epochs": epochs, "--output": output, "--kcore": kcore}
        fixed.update({"--user-col": user_col, "--item-col": item_col, "--time-col": time_col})
        fixed["--separator"], fixed["--time-format"] = separator, time_format
        fixed["--overwrite"] = overwrite or None
        fixed["--item-features"] = item_features or None
        given = [option for option, value in fixed.items() if value is not None]
        if given:
            raise ConfigError(
                f"--resume continues {resume} with its own settings; {', '.join(given)} cannot change"
            )
        given_runtime = {name: value for name, value in runtime.items() if value is not None}  # beat --set
        rec = SequentialRecommender.resume(
            resume, progress=_bars(progress) and main_process, **{**overrides, **given_runtime}
        )
        leave_process_group()
        if main_process:
            _report_training(rec, resume)
        return
    if item_features:
        if "item_features" in overrides:
            raise ConfigError(
                "item features are given twice (--item-features and --set item_features); give them one way"
            )
        overrides["item_features"] = ",".join(item_features)
    config = resolve_config(
        model,
        dataset,
        dataset_name(dataset),
        preset,
        overrides,
        seed=seed,
        epochs=epochs,
        kcore=kcore,
        **runtime,
    )
    columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col, "separator": separator}
    columns["time_format"] = time_format
    data = resolve_dataset(dataset, config.data_dir, kcore=config.kcore, **columns)
    features = None
    if config.item_features:
        options = _feature_options(item_id_col, categorical, multi_separator)
        features = read_run_item_features(config, data, **options)
    output = output or Path("runs") / f"{config.model}-{data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    rec = SequentialRecommender(config=config).fit(
        data, features, run_dir=output, progress=_bars(progress) and main_process, overwrite=overwrite
    )
    leave_process_group()
    if main_process:
        _report_training(rec, output)


def _report_training(rec: SequentialRecommender, output: Path) -> None:
    """The end of `train`: metrics and where the run is; exit 1 for a run stopped before any trained epoch."""
    metrics = rec.metrics
    if metrics["best_epoch"] < 0:
        typer.echo(
            f"stopped before any epoch was validated: {output} holds no trained model "
            f"(bsarec train --resume {output} continues it)",
            err=True,
        )
        raise typer.Exit(1)
    _print_metrics("valid", metrics["valid"])
    if "test" in metrics:
        _print_metrics("test ", metrics["test"])
    stopped = " (interrupted; --resume continues it)" if metrics.get("interrupted") else ""
    typer.echo(f"best epoch {metrics['best_epoch']} of {metrics['epochs']}; run saved in {output}{stopped}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory written by `bsarec train`"),
    split: str = typer.Option("test", help="valid or test"),
    history_mask: str | None = typer.Option(None, help="exclude or zero (default: the run's setting)"),
    candidates: str | None = typer.Option(
        None, help="full, sampled-uniform or sampled-popularity (default: the run's setting)"
    ),
    device: str = typer.Option("cpu", help="cpu, cuda or auto"),
) -> None:
    """Recompute the metrics of a saved run, under its own protocol or another one."""
    metrics = SequentialRecommender.load(run_dir, device=device).evaluate(split, history_mask, candidates)
    typer.echo(json.dumps(metrics, indent=1))


@app.command()
def recommend(
    run_dir: Path = typer.Argument(..., help="a run directory written by `bsarec train`"),
    user: str | None = typer.Option(None, help="an original user id of the run's dataset"),
    items: str | None = typer.Option(None, help='a history of original item ids, oldest first: "i1 i2 i3"'),
    input_file: Path | None = typer.Option(
        None, "--input", help="a CSV or Parquet file of histories (batch scoring)"
    ),
    output: Path | None = typer.Option(None, help="the Parquet file of recommendations (with --input)"),
    items_col: str = typer.Option("items", help="the history column of --input"),
    id_col: str | None = typer.Option(
        None, help="the id column of --input (default: id, user, user_id, ...)"
    ),
    chunk_rows: int = typer.Option(10_000, min=1, help="histories per chunk (bounds memory)"),
    k: int = typer.Option(10, "-k", "--k", min=1, help="how many items"),
    include_seen: bool = typer.Option(False, help="allow items of the history in the result"),
    progress: bool = typer.Option(True, help="show a progress bar (batch scoring, on a terminal)"),
    new_items: Path | None = typer.Option(
        None, help="a features file of items that arrived after training: recommend them from their features"
    ),
    where: list[str] = typer.Option(
        [], help="only items with this feature value: FIELD=VALUE (repeatable; values of one field are or-ed)"
    ),
) -> None:
    """Top-k original item ids with scores (seen items excluded), for a user, a history, or a file of histories."""
    if sum(x is not None for x in (user, items, input_file)) != 1:
        raise typer.BadParameter("give exactly one of --user, --items or --input")
    if output is not None and input_file is None:
        raise typer.BadParameter("--output goes with --input (batch scoring); --user and --items print")
    if input_file is not None:
        if output is None:
            raise typer.BadParameter("--input needs --output (a .parquet file)")
        check_output_file(output, input_file)  # before the model is loaded
    rec = SequentialRecommender.load(run_dir)
    if new_items is not None:
        typer.echo(json.dumps(rec.add_items(new_items)), err=True)
    conditions = _parse_where(where)
    if input_file is not None:
        counts = score_file(
            rec,
            input_file,
            output,
            k,
            not include_seen,
            items_col,
            id_col,
            chunk_rows,
            progress=_bars(progress),
            where=conditions,
        )
        typer.echo(json.dumps({"output": str(output), **counts}))
        return
    result = rec.recommend(
        user=user,
        items=items.split() if items is not None else None,
        k=k,
        exclude_seen=not include_seen,
        where=conditions,
    )
    if user is not None and result.unknown:
        typer.echo(f"unknown user: {user}", err=True)
    elif result.unknown:
        typer.echo(f"unknown item ids (ignored): {' '.join(map(str, result.unknown))}", err=True)
    if result.empty_history:
        typer.echo("note: empty history; this is the model's answer for an empty sequence", err=True)
    for rank, (item, score) in enumerate(zip(result.items, result.scores, strict=True), start=1):
        typer.echo(f"{rank:3d}  {item}  {score:.4f}")


def _parse_where(conditions: list[str]) -> dict[str, list[str]] | None:
    """FIELD=VALUE conditions as {field: [values]}; None when there are none."""
    out: dict[str, list[str]] = {}
    for condition in conditions:
        field, sep, value = condition.partition("=")
        if not sep or not field.strip():
            raise ConfigError(f"--where {condition!r}: expected FIELD=VALUE")
        out.setdefault(field.strip(), []).append(value.strip())
    return out or None


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="a run directory written by `bsarec train`"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="worker processes (each loads the model)"),
    threads: int = typer.Option(1, min=1, help="torch threads per worker"),
    max_k: int = typer.Option(100, min=1, help="largest k a request may ask for"),
    max_history: int = typer.Option(1000, min=1, help="most items in one history"),
    max_batch: int = typer.Option(256, min=1, help="most histories in one batch request"),
    max_body_bytes: int = typer.Option(1_000_000, min=1, help="largest request body"),
    new_items: Path | None = typer.Option(
        None, help="a features file of items that arrived after training: serve them from their features"
    ),
    api_key_env: str | None = typer.Option(
        None,
        help="require 'Authorization: Bearer KEY' on every endpoint but /health, KEY read from this environment "
        "variable",
    ),
    engine: str = typer.Option(
        "auto",
        help="onnx (ONNX Runtime), torch, or auto: onnx where the export extra is installed and the model exports",
    ),
) -> None:
    """Serve top-k recommendations over HTTP (FastAPI + Uvicorn); OpenAPI docs at /docs, Prometheus metrics at
    /metrics."""
    require_extra("serve", "bsarec serve")
    uvicorn = require("uvicorn", "serve", "bsarec serve")
    if api_key_env is not None and not os.environ.get(api_key_env):
        raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
    checked = SequentialRecommender.load(run_dir)  # a damaged run is refused here, not in a worker
    if new_items is not None:  # so is a bad features file
        typer.echo(json.dumps(checked.add_items(new_items)), err=True)
    # and an engine that cannot serve it: the workers are given one that can
    engine = choose_engine(checked, engine, threads)
    typer.echo(f"engine: {engine}", err=True)
    settings = {
        "RUN_DIR": str(run_dir.resolve()),
        "THREADS": threads,
        "MAX_K": max_k,
        "MAX_HISTORY": max_history,
        "MAX_BATCH": max_batch,
        "MAX_BODY_BYTES": max_body_bytes,
        "NEW_ITEMS": _absolute_features(new_items) if new_items is not None else "",
        "API_KEY_ENV": api_key_env or "",
        "ENGINE": engine,
        "ONNX_GRAPH": "",
    }
    with tempfile.TemporaryDirectory(prefix="bsarec-serve-") as folder:
        if checked.encoder is not None:  # exported once, here: the workers load this graph
            graph = Path(folder) / "encoder.onnx"
            graph.write_bytes(checked.encoder.graph)
            settings["ONNX_GRAPH"] = str(graph)
        os.environ.update({f"BSAREC_SERVE_{k}": str(v) for k, v in settings.items()})
        uvicorn.run(
            "bsarec.serving.app:app_from_environment", factory=True, host=host, port=port, workers=workers
        )


def _absolute_features(spec: Path) -> str:
    """A features file as an absolute path for the workers (which may start elsewhere), keeping FIELD=."""
    name, path = split_field_name(spec)
    return f"{name}={path.resolve()}" if name else str(path.resolve())


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="a run directory written by `bsarec train`"),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript"),
    output: Path | None = typer.Option(None, help="the file to write (default: in RUN_DIR)"),
    top_k: int | None = typer.Option(None, help="return the k best ids and scores instead of all scores"),
    exclude_seen: bool = typer.Option(False, help="score the items of the input window -inf"),
) -> None:
    """Export the run's scoring graph (padded history in, item scores or top-k out), checked against PyTorch."""
    if fmt == "onnx":
        require_extra("export", "bsarec export --format onnx")
    typer.echo(json.dumps(export_run(run_dir, fmt, output, top_k, exclude_seen), indent=1))


@app.command()
def tune(
    model: str = typer.Option("bsarec", "--model", "-m", help="any model of `bsarec train --model`"),
    dataset: str = typer.Option(
        "synthetic", "--dataset", "-d", help="a dataset name, a file, or a directory"
    ),
    data_dir: Path | None = typer.Option(None, help="directory holding the benchmark files"),
    output: Path = typer.Option(Path("runs/tune"), help="study, trial runs, table, figures and best preset"),
    trials: int = typer.Option(20, min=1, help="run until the study holds this many finished trials"),
    space: Path | None = typer.Option(
        None, help="a JSON search space (default: the paper's grid / per model)"
    ),
    preset: str | None = typer.Option(
        None, help="settings the search starts from ('paper', 'best' or a JSON file)"
    ),
    set_: list[str] = typer.Option([], "--set", help="fixed settings for every trial: --set patience=5"),
    epochs: int | None = typer.Option(None, help="maximum epochs per trial (default 200)"),
    storage: str | None = typer.Option(
        None, help="an Optuna storage URL (default sqlite:///OUTPUT/study.db)"
    ),
    study_name: str | None = typer.Option(None, help="the study's name (default MODEL-DATASET)"),
    seed: int = typer.Option(42, help="the sampler's and the runs' seed"),
    pack: int = typer.Option(
        1, min=1, help="train N trials together as one batched model (their space: lr, alpha, c, ... only)"
    ),
    track: list[str] = typer.Option([], help=TRACK_HELP),
) -> None:
    """Search hyperparameters with Optuna on validation NDCG@20 (resumable); write the best preset."""
    require_extra("analysis", "bsarec tune")
    _setup_logging()
    overrides = _with_tracking(
        parse_overrides(set_), track, study_name or f"tune-{model}-{dataset_name(dataset)}"
    )
    if epochs is not None:
        overrides["epochs"] = epochs
    summary = run_tune(
        model,
        dataset,
        str(data_dir) if data_dir else None,
        output,
        trials,
        str(space) if space else None,
        overrides,
        preset,
        storage,
        study_name,
        seed,
        pack=pack,
    )
    typer.echo(json.dumps(summary, indent=1))


@app.command()
def analyze(
    run_dir: Path = typer.Argument(..., help="a run directory written by `bsarec train`"),
    compare: list[Path] = typer.Option(
        [], "--compare", help="more runs (repeatable): overlaid on one dataset, a panel per dataset otherwise"
    ),
    output: Path | None = typer.Option(
        None, help="where analysis.json and the PNGs go (default RUN_DIR/analysis)"
    ),
    users: int = typer.Option(2000, min=1, help="validation users for the representation statistics"),
) -> None:
    """Oversmoothing, spectra, learned beta, and metrics by history length and target popularity (JSON + PNG)."""
    require("matplotlib", "analysis", "bsarec analyze")
    output = output or run_dir / "analysis"
    summary = run_analysis([run_dir, *compare], output, users)
    for r in summary["runs"]:
        line = f"{r['model']} ({r['run_dir']})"
        if "oversmoothing_cosine" in r:
            line += "  cosine per layer: " + " ".join(f"{c:.3f}" for c in r["oversmoothing_cosine"])
        if "beta_mean" in r:
            line += "  mean beta per layer: " + " ".join(f"{b:.2f}" for b in r["beta_mean"])
        typer.echo(line)
    typer.echo(f"written: {output / 'analysis.json'}, " + ", ".join(Path(f).name for f in summary["figures"]))


@app.command()
def demo(
    output: Path = typer.Option(Path("runs/demo"), help="where the demo runs are written"),
    epochs: int = typer.Option(10, help="maximum epochs per model"),
    progress: bool = typer.Option(False, help="show progress bars"),
) -> None:
    """The main job: generate the default data, train BSARec and SASRec, compare with popularity."""
    _setup_logging()
    typer.echo(demo_report(run_demo(output, epochs=epochs, progress=progress)))


@app.command()
def speed(
    dataset: str = typer.Option("LastFM", "--dataset", "-d", help="dataset name or path"),
    data_dir: Path | None = typer.Option(None, help="directory holding the benchmark files"),
    model: str = typer.Option("bsarec", "--model", "-m", help="any model of `bsarec train --model`"),
    preset: str | None = typer.Option("paper", help="settings preset"),
    steps: int = typer.Option(30, help="timed training steps per repeat"),
    repeats: int = typer.Option(3, help="repeats (the median is reported)"),
    straightforward: bool = typer.Option(True, help="also time the plain step (bsarec, sasrec) side by side"),
    output: Path | None = typer.Option(None, help="write the results as JSON here"),
) -> None:
    """Training and validation speed: samples/s, seconds per epoch and per validation pass, peak memory."""
    result = run_speed_benchmark(
        dataset, str(data_dir) if data_dir else None, model, preset, steps, repeats, straightforward
    )
    typer.echo(json.dumps(result, indent=1))
    if output:
        atomic_write_json(output, result)


def _split_list(values: list[str]) -> list[str]:
    return [v for value in values for v in value.replace(",", " ").split()]


@app.command()
def benchmark(
    models: list[str] = typer.Option(
        ["bsarec", "sasrec"], "--models", "-m", help="models (repeat or comma-separate)"
    ),
    datasets: list[str] = typer.Option(["LastFM"], "--datasets", "-d", help="datasets (names or paths)"),
    seeds: list[str] = typer.Option(["42", "43", "44"], "--seeds", help="seeds (repeat or comma-separate)"),
    data_dir: Path | None = typer.Option(None, help="directory holding the benchmark files"),
    runs: Path = typer.Option(Path("runs/benchmark"), help="where the run directories go"),
    output: Path | None = typer.Option(None, help="where results.csv/json and table.md go (default: RUNS)"),
    preset: str | None = typer.Option(
        "paper", help="'paper', 'best', a JSON file, or 'none' for the defaults"
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="protocol or model override for every cell: --set padding=cyclic (repeatable)"
    ),
    jobs: int = typer.Option(1, help="cells trained at once, each in its own process"),
    threads: int | None = typer.Option(None, help="torch threads per cell (default: all cores / jobs)"),
    device: str | None = typer.Option(None, help="cpu, cuda or auto"),
    epochs: int | None = typer.Option(None, help="maximum epochs (default 200)"),
    reference: Path | None = typer.Option(None, help="published numbers (JSON) to show beside ours"),
    summary_only: bool = typer.Option(False, help="only rebuild the results from finished runs"),
    pack: int = typer.Option(
        1, min=1, help="train up to N cells that differ only in seed together, as one batched model (GPU)"
    ),
    order: str = typer.Option(
        "longest",
        help="which pending cells train first: longest (the whole grid ends soonest), shortest (the most cells "
        "finish soonest, for a grid that will be stopped and resumed) or given (the order of the lists)",
    ),
    track: list[str] = typer.Option([], help=TRACK_HELP),
) -> None:
    """Train a grid of models x datasets x seeds (resumable) and write results and the paper-style table.

    Several of these may share one --runs directory: each skips the cells another one is training. The cells
    recorded in OUTPUT/results.json stay finished when their run directories are gone (delete it, or choose
    another --output, to train them again)."""
    _setup_logging()
    try:
        seed_list = [int(s) for s in _split_list(seeds)]
    except ValueError:
        raise typer.BadParameter(f"--seeds: expected integers, got {seeds}") from None
    grid = BenchmarkGrid(
        [m.lower() for m in _split_list(models)],
        _split_list(datasets),
        seed_list,
        runs=runs,
        output=output,
        preset=None if preset in (None, "none") else preset,
        overrides=_with_tracking(parse_overrides(set_), track, f"grid-{(output or runs).name}"),
        jobs=jobs,
        threads=threads,
        device=device,
        epochs=epochs,
        data_dir=str(data_dir) if data_dir else None,
        reference=reference,
        command="bsarec " + " ".join(sys.argv[1:]),
        pack=pack,
        order=order,
    )
    if summary_only:
        grid.rebuild()
    else:
        typer.echo(grid.plan_line())
        outcome = grid.run()
        if outcome.busy:
            typer.echo(
                "left to the processes training them now (re-run later to include them):\n  "
                + "\n  ".join(outcome.busy),
                err=True,
            )
        if outcome.failures:
            typer.echo("failed cells:\n  " + "\n  ".join(outcome.failures), err=True)
            raise typer.Exit(1)
    typer.echo((grid.output / "table.md").read_text())


@data_app.command("info")
def data_info(
    dataset: str = typer.Argument(..., help="a dataset name, a file, or a directory"),
    data_dir: Path | None = typer.Option(None, help="directory holding the benchmark files"),
    kcore: int | None = typer.Option(None, help="k-core filter for raw logs (default 5)"),
    user_col: str | None = typer.Option(None, help="user column of a raw log (default: detected)"),
    item_col: str | None = typer.Option(None, help="item column of a raw log (default: detected)"),
    time_col: str | None = typer.Option(None, help="timestamp column of a raw log (default: detected)"),
    separator: str | None = typer.Option(None, help="separator of a raw CSV/TSV log (default: detected)"),
    time_format: str | None = typer.Option(None, help="form of a raw log's date-times (default: detected)"),
    as_json: bool = typer.Option(False, "--json", help="print the statistics and report as JSON"),
) -> None:
    """Users, items, interactions, mean/median length and sparsity, and how the data was read."""
    columns = {"user_col": user_col, "item_col": item_col, "time_col": time_col}
    columns |= {"separator": separator, "time_format": time_format}
    data = resolve_dataset(dataset, str(data_dir) if data_dir else None, kcore=kcore, **columns)
    if as_json:
        typer.echo(json.dumps({**data.stats(), "report": data.report}, indent=1))
        return
    _echo_stats(data)


def _echo_stats(data) -> None:
    """A dataset's statistics and its reading report as aligned lines (nested values as dotted keys)."""
    for key, value in data.stats().items():
        typer.echo(f"{key:22s} {value:.6g}" if isinstance(value, float) else f"{key:22s} {value}")
    if data.report:
        typer.echo("how it was read:")
        for key, value in _flat(data.report):
            typer.echo(f"  {key:20s} {value}")


def _flat(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", ", ".join(map(str, value)) if isinstance(value, list) else value))
    return rows


@data_app.command("prepare")
def data_prepare(
    source: str = typer.Argument(
        ..., help="a raw log (CSV/TSV/Parquet), a benchmark .txt, or a dataset name"
    ),
    output: Path = typer.Option(..., help="directory for the prepared dataset"),
    kcore: int | None = typer.Option(None, help="k-core filter for raw logs (default 5; 1 turns it off)"),
    user_col: str | None = typer.Option(None, help="user column (default: detected)"),
    item_col: str | None = typer.Option(None, help="item column (default: detected)"),
    time_col: str | None = typer.Option(None, help="timestamp column (default: detected)"),
    separator: str | None = typer.Option(
        None,
        help="separator of a CSV/TSV log: one character, comma, tab, semicolon, pipe (default: detected)",
    ),
    time_format: str | None = typer.Option(
        None, help="form of the log's date-times, strftime codes such as '%d/%m/%Y' (default: detected)"
    ),
    data_dir: Path | None = typer.Option(None, help="directory holding the benchmark files"),
    item_features: list[str] = typer.Option([], help=ITEM_FEATURES_HELP),
    item_id_col: str | None = typer.Option(None, help="item id column of an item table (default: detected)"),
    categorical: list[str] = typer.Option(
        [], help="read this numeric column of an item table as categories (repeatable)"
    ),
    multi_separator: str = typer.Option("|", help="separator of several values in one text cell"),
    overwrite: bool = typer.Option(False, help="replace the prepared dataset already in --output"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Preprocess once (order, k-core, id maps) and save; pass the directory as --dataset afterwards, and its
    item_features directory (with --item-features) as --item-features. An existing prepared dataset is
    replaced only with --overwrite; a directory holding anything else is refused."""
    started = time.perf_counter()
    check_output(output, overwrite)  # before any work
    data = resolve_dataset(
        source,
        str(data_dir) if data_dir else None,
        kcore=kcore,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        separator=separator,
        time_format=time_format,
    )
    features = None
    if item_features:
        options = _feature_options(item_id_col, categorical, multi_separator)
        features = resolve_item_features(",".join(item_features), data, data_dir, **options)
    save_prepared(data, features, output, overwrite)
    summary = {"output": str(output), **data.stats(), "report": data.report}
    if features is not None:
        summary["item_features"] = {"output": str(output / FEATURES_DIR), **features.report}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    _echo_stats(data)
    if features is not None:
        typer.echo(f"item features    {output / FEATURES_DIR}")
        typer.echo(reading_table(features.report))
    typer.echo(f"prepared in {summary['seconds']} s: {output}")


def main() -> None:
    try:
        app()
    except (DataError, ConfigError, MissingExtra, NonFiniteError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a full disk, a read-only directory, a file gone: what and where, no traceback
        where = f": {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (free some space; files written atomically were left as they were)"
        typer.echo(f"error: {reason}{where}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
