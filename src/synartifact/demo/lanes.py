"""How the demo runs one stage, and how its side lane runs beside the main lane.

Tiny models leave a second core half idle: on 2 cores the classifier's SFT runs barely faster with two threads than
with one. So the stages marked ``lane="side"`` (the judge and its evaluation) run in a second process, one thread,
while the main lane's stages between that point and the first stage that reads a side stage's output run with one
thread too. Which stage runs with how many threads is fixed by the table and the core count, never by timing: two
runs on one machine give the same figures.

    python -m synartifact.demo.lanes JOB_FILE   # the side lane's process (written and started by run_demo)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synartifact.demo.settings import FINGERPRINT_FILE, DemoSettings
from synartifact.utils import atomic_dir, remove_stale_temp_dirs

__all__ = ["LANES_FILE", "SideLane", "lane_plan", "run_stage", "stage_paths", "threads", "write_lanes"]

LANES_FILE = "lanes.json"  # under <out>/.stages: which stages ran in the side lane, and the wait for it
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def stage_paths(out: Path, stage: Any) -> tuple[Path, Path]:
    """A stage's output folder and the folder of its fingerprint file."""
    target = out if stage.folder == "." else out / stage.folder
    return target, (out / ".stages" / stage.name if stage.folder == "." else target)


def run_stage(s: DemoSettings, stage: Any, fingerprint: str) -> float:
    """Run one stage into its folder (written to a temporary folder, renamed when complete), record its
    fingerprint and seconds; return the seconds. A failure names the stage and keeps earlier outputs."""
    target, marker_dir = stage_paths(Path(s.out), stage)
    start = time.perf_counter()
    try:
        if stage.folder == ".":
            stage.run(s, target)
        else:
            remove_stale_temp_dirs(target)  # what a killed demo left
            with atomic_dir(target, overwrite=True) as tmp:
                tmp.rmdir()  # the stage creates it: its scripts refuse to write into an existing folder
                stage.run(s, tmp)
    except Exception as err:
        raise RuntimeError(
            f"demo stage '{stage.name}' failed ({err}); the outputs of earlier stages in {s.out} "
            f"are intact: fix the cause and rerun `synartifact demo` to continue from here."
        ) from err
    seconds = time.perf_counter() - start
    marker_dir.mkdir(parents=True, exist_ok=True)
    (marker_dir / FINGERPRINT_FILE).write_text(json.dumps({"fingerprint": fingerprint, "seconds": round(seconds, 1)}))
    return seconds


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads, and scripts it starts with ``n`` OpenMP/MKL threads (None: as is)."""
    if n is None:
        yield
        return
    import torch

    before, env_before = torch.get_num_threads(), {k: os.environ.get(k) for k in THREAD_VARIABLES}
    torch.set_num_threads(n)
    os.environ.update({k: str(n) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        torch.set_num_threads(before)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def lane_plan(stages: Sequence[Any], cores: int) -> tuple[set[str], set[str], int | None]:
    """(the side lane's stages, the main stages that run beside it, threads each) from the stage table (the lane
    starts where its first stage stands in the order): the main
    stages after the first side stage, up to the first that reads a side stage's output or is marked ``alone``. The
    side lane is empty (everything in order, threads as they are) on one core or when no stage is marked ``side``."""
    side = {st.name for st in stages if st.lane == "side"}
    if cores < 2 or not side:
        return set(), set(), None
    start = min(i for i, st in enumerate(stages) if st.name in side)
    beside = set()
    for st in stages[start + 1 :]:
        if st.name in side:
            continue
        if side & set(st.after) or st.lane == "alone":
            break
        beside.add(st.name)
    return side, beside, max(1, cores // 2)


def write_lanes(out: Path, side: list[str], beside: list[str], n_threads: int | None, waited: float) -> None:
    """``<out>/.stages/lanes.json``: the stages this run ran in the side lane and beside it, with how many threads
    each, and how long the main lane waited for it (REPORT.md's stage table reads it); removed when none ran."""
    path = Path(out) / ".stages" / LANES_FILE
    if not side:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"side": side, "beside": beside, "threads": n_threads, "wait_seconds": round(waited, 1)}
    path.write_text(json.dumps(record))


class SideLane:
    """The side lane's process: its stages in order, each as :func:`run_stage` runs it, with ``n_threads`` threads.

    The stages' run functions travel by reference (pickle), so they must be importable module-level functions."""

    def __init__(self, s: DemoSettings, jobs: list[tuple[Any, str]], n_threads: int):
        self.s, self.n_threads = s, n_threads
        # each stage with its fingerprint; its config (a lambda, and only the fingerprint's business) stays behind
        self.jobs = [(dataclasses.replace(st, config=None), fp) for st, fp in jobs]
        self.error_file = Path(s.out) / ".stages" / "side-lane-error.txt"
        self.log_file = Path(s.out) / ".stages" / "side-lane.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        job_file = Path(self.s.out) / ".stages" / "side-lane-job.pkl"
        job_file.parent.mkdir(parents=True, exist_ok=True)
        self.error_file.unlink(missing_ok=True)
        job_file.write_bytes(pickle.dumps((self.s, self.jobs, self.n_threads, self.error_file)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env.update({k: str(self.n_threads) for k in THREAD_VARIABLES})
        with open(self.log_file, "w") as log:  # its progress bars would tangle with the main lane's
            self.process = subprocess.Popen(
                [sys.executable, "-m", "synartifact.demo.lanes", str(job_file)], env=env, stdout=log, stderr=log
            )

    def wait(self) -> None:
        """Wait for the lane; a failed stage of it raises the stage's own error."""
        if self.process is None:
            return
        code = self.process.wait()
        self.process = None
        if code != 0:
            message = self.error_file.read_text() if self.error_file.is_file() else ""
            names = ", ".join(st.name for st, _ in self.jobs)
            raise RuntimeError(
                (message or f"the demo's side lane ({names}) exited with {code}") + f" (its output: {self.log_file})"
            )


def _side_lane_main(job_file: str) -> int:
    s, jobs, n_threads, error_file = pickle.loads(Path(job_file).read_bytes())
    with threads(n_threads):
        for stage, fingerprint in jobs:
            print(f"[side lane] {stage.name}: {stage.describe}", flush=True)
            try:
                run_stage(s, stage, fingerprint)
            except Exception as err:
                Path(error_file).write_text(str(err))
                raise
    return 0


if __name__ == "__main__":
    sys.exit(_side_lane_main(sys.argv[1]))
