"""Carry unfinished benchmark cells from one session to the next through git.

A session's ignored files (benchmarks/runs/) do not reach the next session's checkout, and a FEARec Beauty cell
needs several sessions on the CPU. `park` packs each unfinished run directory of a runs tree into
PARKED/<dataset>__<model>__<protocol>__<seed>.tar.gz: config.json, train.log, dataset/ and its newest complete
checkpoint (model, optimizer, best weights, every random generator, position, history), which is all that
`bsarec train --resume` needs to end with the same weights as an uninterrupted run. The best weights are
written again when the run ends. `restore` unpacks a parked cell where the runs tree has nothing as far on,
and `park` drops the archives of cells that have finished since.

  python benchmarks/park_runs.py park benchmarks/runs/baselines benchmarks/parked
  python benchmarks/park_runs.py restore benchmarks/parked benchmarks/runs/baselines
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from bsarec.api import finished_metrics
from bsarec.benchmark import lock_file_of
from bsarec.training.helpers import Checkpointer

SMALL_FILES = ("config.json", "train.log")


def cell_name(run_dir: Path, runs: Path) -> str:
    return "__".join(run_dir.relative_to(runs).parts)


def newest_checkpoint(directory: Path) -> str | None:
    """The name (epochEEEE-batchBBBBBB) of the newest complete checkpoint in a checkpoints directory."""
    complete = Checkpointer(directory).complete()
    return complete[-1].stem if complete else None


def unfinished_runs(runs: Path) -> list[Path]:
    return sorted(
        config.parent
        for config in runs.rglob("config.json")
        if (config.parent / "checkpoints").is_dir() and finished_metrics(config.parent) is None
    )


def park(runs: Path, parked: Path) -> None:
    parked.mkdir(parents=True, exist_ok=True)
    finished = {cell_name(m.parent, runs) for m in runs.rglob("metrics.json") if finished_metrics(m.parent)}
    for archive in sorted(parked.glob("*.tar.gz")):
        if archive.name.removesuffix(".tar.gz") in finished:
            archive.unlink()
            print(f"{archive}: finished since it was parked; removed")
    for run_dir in unfinished_runs(runs):
        checkpoints = run_dir / "checkpoints"
        stem = newest_checkpoint(checkpoints)
        if stem is None:
            print(f"{run_dir}: no complete checkpoint yet; not parked")
            continue
        # read every member before writing, so that the trainer's pruning of older checkpoints cannot
        # leave a half archive; the newest checkpoint is only deleted two checkpoints later
        members = {name: (run_dir / name).read_bytes() for name in SMALL_FILES if (run_dir / name).is_file()}
        for path in sorted((run_dir / "dataset").iterdir()):
            members[f"dataset/{path.name}"] = path.read_bytes()
        for suffix in (".safetensors", ".json"):
            members[f"checkpoints/{stem}{suffix}"] = (checkpoints / f"{stem}{suffix}").read_bytes()
        target = parked / f"{cell_name(run_dir, runs)}.tar.gz"
        handle, temporary = tempfile.mkstemp(dir=parked, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        os.replace(temporary, target)
        state = json.loads(members[f"checkpoints/{stem}.json"])
        print(f"{target}: {stem}, {len(state['history'])} epochs done, {target.stat().st_size / 1e6:.1f} MB")


def restore(parked: Path, runs: Path) -> None:
    for archive in sorted(parked.glob("*.tar.gz")):
        run_dir = runs.joinpath(*archive.name.removesuffix(".tar.gz").split("__"))
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:  # the cell's lock, as `bsarec benchmark` takes it: no process trains it while it is unpacked
            lock = FileLock(lock_file_of(run_dir), timeout=0).acquire()
        except Timeout:
            print(f"{run_dir}: a process is training it; {archive} not restored")
            continue
        with lock, tarfile.open(archive) as tar:
            # park writes one checkpoint per archive
            stem = next(
                (
                    Path(n).stem
                    for n in tar.getnames()
                    if n.startswith("checkpoints/") and n.endswith(".json")
                ),
                None,
            )
            if stem is None:
                raise SystemExit(f"{archive}: holds no checkpoints/*.json; not an archive written by park")
            current = newest_checkpoint(run_dir / "checkpoints")
            if finished_metrics(run_dir) is not None or (current is not None and current >= stem):
                print(f"{run_dir}: already at {current or 'the end'}; {archive} not restored")
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            tar.extractall(run_dir, filter="data")  # plain files below run_dir only
        print(f"{run_dir}: restored at {stem} from {archive}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    park_cmd = sub.add_parser("park", help="pack the unfinished cells of RUNS into PARKED")
    park_cmd.add_argument("runs", type=Path)
    park_cmd.add_argument("parked", type=Path)
    restore_cmd = sub.add_parser(
        "restore", help="unpack the parked cells that RUNS has nothing as far on for"
    )
    restore_cmd.add_argument("parked", type=Path)
    restore_cmd.add_argument("runs", type=Path)
    args = parser.parse_args()
    if args.command == "park":
        park(args.runs, args.parked)
    else:
        restore(args.parked, args.runs)


if __name__ == "__main__":
    main()
