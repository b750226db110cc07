"""Replay a corpus: many recordings, in parallel worker processes or as Ray tasks, resumable.

Each input's output bag is written under a temporary name beside its final place and renamed only
when complete, with a record of what made it (``fcn_replay.json`` inside the bag folder: the input's
size and mtime, the model's SHA-256, the parameters). A rerun skips an input whose output is final
and current, and redoes the rest — after a ``kill -9`` of the run or of one worker nothing
half-written is ever taken as done (a ``.partial`` folder is never final). One bad input is an
outcome with its reason; the others finish.

Workers load the model once each (not per bag) and split the cores between them; masks are the
same bytes whatever the number of workers (inference threads change no result here: checked in
test_corpus.py). ``corpus.json`` lists every input's outcome and the totals.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fcn_perception.bags.recording import is_recording_folder, open_recording
from fcn_perception.files import file_sha256

if TYPE_CHECKING:
    from fcn_perception.bags.replay import ReplaySummary

#: documents and pictures beside recordings: listed as ignored, not replayed. Any other file in a
#: searched folder is tried, and reported with its reason if it is not a recording (a .bag of ROS 1,
#: a truncated upload, a stray export): a corpus must not hide a drive it could not read.
SIDECAR_SUFFIXES = (".md", ".html", ".pdf", ".png", ".jpg", ".jpeg")
RECORD = "fcn_replay.json"
PARTIAL = ".partial"


@dataclass
class Input:
    path: Path
    rel: Path  # where its output goes under --out


@dataclass
class Settings:
    """What every worker needs to replay a bag as the CLI asked (picklable: sent to workers and Ray)."""

    values: dict  # node parameters (the params file and overrides, merged)
    topics: list[str] | None = None
    storage: str = "mcap"
    overlay: bool = False
    threads: int = 0
    confidence: bool = False  # write each frame's confidence image
    uncertain: tuple[int, float] | None = None  # (top, min_gap_s): keep each camera's least sure frames


@dataclass
class RecordingOutcome:
    """One recording's line in corpus.json: what became of it, and its replay summary's totals."""

    input: str
    output: str = ""
    status: str = "failed"  # done | skipped (final and current) | failed
    reason: str = ""
    frames: int = 0
    masks: int = 0
    bad_frames: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    cut_short: str = ""
    ground: dict[str, str] = field(default_factory=dict)  # per camera: ground outputs' status
    drivable_confidence: dict[str, float | None] = field(default_factory=dict)  # per camera: mean over its frames
    uncertain: list[dict] = field(default_factory=list)  # --export-uncertain: each camera's candidates
    seconds: float = 0.0
    fps: float = 0.0
    output_bytes: int = 0

    def fill(self, summary: ReplaySummary) -> None:
        self.frames, self.bad_frames, self.cut_short = summary.frames, summary.bad_frames, summary.cut_short
        self.masks = sum(c.masks for c in summary.cameras.values())
        for c in summary.cameras.values():
            for k, v in c.bad_reasons.items():
                self.bad_reasons[k] = self.bad_reasons.get(k, 0) + v
        self.ground = {t: c.ground_status for t, c in summary.cameras.items()}
        self.drivable_confidence = {t: c.drivable_confidence for t, c in summary.cameras.items()}
        self.uncertain = list(summary.uncertain)


def find_inputs(paths: list[str | Path]) -> tuple[list[Input], list[str]]:
    """Recordings among ``paths`` (folders searched), each with its output's relative path; and the
    files passed over as sidecars. A file named explicitly is always an input (a bad one fails)."""
    inputs, ignored = [], []
    for given in map(Path, paths):
        if given.is_dir() and not is_recording_folder(given):
            for root, dirs, files in os.walk(given):
                root_p = Path(root)
                dirs.sort()
                for d in list(dirs):
                    if d.startswith(".") or is_recording_folder(root_p / d):
                        dirs.remove(d)
                        if not d.startswith("."):
                            inputs.append(Input(root_p / d, Path(given.name) / (root_p / d).relative_to(given)))
                for f in sorted(files):
                    p = root_p / f
                    if f.startswith("."):
                        continue
                    if p.suffix.lower() in SIDECAR_SUFFIXES:
                        ignored.append(str(p))
                    else:  # a bag file, or something that claims a place among them: tried, and reported
                        inputs.append(Input(p, Path(given.name) / p.relative_to(given).with_suffix("")))
        else:
            inputs.append(Input(given, Path(given.name).with_suffix("") if given.is_file() else Path(given.name)))
    seen, unique = set(), []
    for inp in inputs:
        key = inp.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(inp)
    return unique, ignored


def _stat(path: Path) -> dict:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return {"bytes": sum(p.stat().st_size for p in files), "mtime_ns": max((p.stat().st_mtime_ns for p in files), default=0)}


def fingerprint(inp: Path, settings: Settings, model_sha256: str) -> dict:
    """What an output depends on: a change in any of these redoes it."""
    fp = {"input": _stat(inp), "model_sha256": model_sha256, "params": settings.values, "topics": settings.topics, "overlay": settings.overlay}
    if settings.confidence:
        fp["confidence"] = True
    if settings.uncertain:  # the candidates kept in the record depend on them
        fp["uncertain"] = list(settings.uncertain)
    return fp


def current_record(out: Path, fp: dict) -> dict | None:
    """The record of a final output made with ``fp``, or None (missing, partial, stale)."""
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("fingerprint") == fp else None


def model_sha256(values: dict) -> str:
    """SHA-256 of the model file these parameters serve (hashed, not loaded)."""
    from fcn_perception.inference.backends import default_kind
    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.params.node_config import NodeConfig

    cfg = NodeConfig.from_dict(values)
    return file_sha256(resolve_model(cfg.model, default_kind(cfg.backend, "auto", cfg.precision)))


_PIPELINES: dict[str, object] = {}


def _pipeline(settings: Settings):
    """The worker's one pipeline (a model load per worker process, not per bag)."""
    from dataclasses import replace

    from fcn_perception.params.node_config import NodeConfig
    from fcn_perception.scene.pipeline import Pipeline

    key = json.dumps([settings.values, settings.threads], sort_keys=True)
    if key not in _PIPELINES:
        cfg = NodeConfig.from_dict(settings.values)
        _PIPELINES.clear()
        _PIPELINES[key] = Pipeline.for_config(cfg, replace(cfg.segmenter(), threads=settings.threads or cfg.threads))
    return _PIPELINES[key]


def replay_one(inp: Path, out: Path, fp: dict, settings: Settings, on_frame: Callable[[], None] | None = None) -> RecordingOutcome:
    """One input to its final output, via a temporary folder beside it; never raises."""
    from fcn_perception.bags.replay import replay

    outcome = RecordingOutcome(str(inp), str(out))
    scratch = partial_dir(out, os.getpid())  # the bag is written as scratch/<name>, then renamed into place
    tmp = scratch / out.name
    t0 = time.perf_counter()
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        pipeline = _pipeline(settings)
        summary = replay(
            inp,
            tmp,
            settings.topics,
            overrides=settings.values,
            pipeline=pipeline,
            on_frame=on_frame,
            storage=settings.storage,
            progress=False,
            overlay=settings.overlay,
            confidence=settings.confidence,
            uncertain=settings.uncertain,
        )
        outcome.status = "done"
        outcome.fill(summary)
        outcome.seconds = round(time.perf_counter() - t0, 2)
        outcome.fps = round(outcome.frames / outcome.seconds, 2) if outcome.seconds else 0.0
        outcome.output_bytes = summary.output_bytes
        (tmp / RECORD).write_text(json.dumps({"fingerprint": fp, "outcome": asdict(outcome)}, indent=2) + "\n")
        if out.exists():  # a stale output (another model, a changed input): replaced only now
            shutil.rmtree(out)
        os.replace(tmp, out)
        scratch.rmdir()
    except Exception as exc:  # not a bag, unreadable, a bug: this input's outcome, never the corpus's end
        outcome.status, outcome.reason = "failed", f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        outcome.seconds = round(time.perf_counter() - t0, 2)
        shutil.rmtree(scratch, ignore_errors=True)
        if not isinstance(exc, ValueError | OSError):
            outcome.reason += f" ({traceback.extract_tb(exc.__traceback__)[-1].name})"
    return outcome


def partial_dir(out: Path, pid: int) -> Path:
    """Where a worker writes ``out`` before it is complete: a hidden sibling folder, never final."""
    return out.parent / f"{PARTIAL}-{out.name}-{pid}"


# -- one machine: worker processes ----------------------------------------------------------------
#: For tests of a worker's death at a known point: worker 0 stops itself (SIGSTOP) at this frame of
#: its first recording, to be killed there. Unset in normal use.
STOP_WORKER_AT_ENV = "FCN_PERCEPTION_STOP_WORKER_AT"


def _worker(wid: int, tasks, results, settings: Settings) -> None:
    """A worker process: one task at a time from its own queue; progress and outcomes to the parent."""
    pending, frames = 0, 0
    stop_at = int(os.environ.get(STOP_WORKER_AT_ENV, "0")) if wid == 0 else 0

    def on_frame() -> None:
        nonlocal pending, frames
        pending, frames = pending + 1, frames + 1
        if frames == stop_at:
            os.kill(os.getpid(), signal.SIGSTOP)
        if pending >= 10:
            results.put(("progress", wid, pending))
            pending = 0

    while (task := tasks.get()) is not None:
        index, inp, out, fp = task
        outcome = replay_one(Path(inp), Path(out), fp, settings, on_frame)
        results.put(("progress", wid, pending))
        pending = 0
        results.put(("done", wid, index, asdict(outcome)))


def run_workers(jobs: list[tuple[int, Path, Path, dict]], settings: Settings, workers: int, bar, on_outcome: Callable[[int, RecordingOutcome], None]) -> None:
    """Each job on one of ``workers`` processes; a worker that dies fails its job (reason: its exit
    code) and is replaced, so the others go on."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no inherited runtime threads or DDS state
    results = ctx.Queue()
    todo = list(jobs)
    procs: dict[int, tuple] = {}  # wid -> (process, its task queue, current job index or None)
    next_id = 0

    def start() -> None:
        nonlocal next_id
        q = ctx.Queue()
        p = ctx.Process(target=_worker, args=(next_id, q, results, settings), daemon=True)
        p.start()
        procs[next_id] = [p, q, None]
        next_id += 1

    for _ in range(min(workers, len(todo))):
        start()
    jobs_by_index = {j[0]: j for j in jobs}
    remaining = len(todo)

    def reap() -> None:
        """Fail the job of a worker that died mid-job (killed, out of memory, a crash); replace it."""
        nonlocal remaining
        for wid, (p, _q, current) in list(procs.items()):
            if current is not None and not p.is_alive():
                _, inp, out, _ = jobs_by_index[current]
                shutil.rmtree(partial_dir(out, p.pid), ignore_errors=True)
                on_outcome(current, RecordingOutcome(str(inp), str(out), "failed", f"worker process died (exit code {p.exitcode})"))
                remaining -= 1
                del procs[wid]
                if todo:
                    start()

    while remaining:
        for slot in procs.values():  # hand work to idle workers
            if slot[2] is None and todo:
                job = todo.pop(0)
                slot[2] = job[0]
                slot[1].put((job[0], str(job[1]), str(job[2]), job[3]))
        try:
            kind, wid, *rest = results.get(timeout=0.5)
        except queue.Empty:
            kind = ""
        if kind == "progress":
            bar.update(rest[0])
        elif kind == "done":
            index, outcome = rest
            if wid in procs and procs[wid][2] == index:
                procs[wid][2] = None
                remaining -= 1
            on_outcome(index, RecordingOutcome(**outcome))  # a reaped worker's late "done" replaces its failure
        reap()  # every turn: a busy neighbour's progress messages must not hide a death
    for _p, q, _ in procs.values():
        q.put(None)
    for p, _q, _ in procs.values():
        p.join(timeout=10)


# -- a cluster: Ray tasks ---------------------------------------------------------------------------
def run_ray(jobs: list[tuple[int, Path, Path, dict]], settings: Settings, address: str, workers: int, bar, on_outcome) -> None:
    """Each job as a Ray task on the cluster (``address``: host:port, ``auto``, or ``local`` for a
    runtime on this machine). Inputs and outputs are paths every node must see (a shared mount)."""
    ray = require_ray()
    local = address == "local"
    ray.init(address=None if local else address, num_cpus=workers if local else None, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        futures = {remote.remote(str(inp), str(out), fp, settings): (index, inp, out) for index, inp, out, fp in jobs}
        pending = list(futures)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            index, inp, out = futures[done[0]]
            try:
                outcome = RecordingOutcome(**ray.get(done[0]))
            except Exception as exc:  # the task's worker died: this input's outcome
                outcome = RecordingOutcome(str(inp), str(out), "failed", f"Ray task failed: {exc.__class__.__name__}")
            bar.update(outcome.frames)
            on_outcome(index, outcome)
    finally:
        ray.shutdown()


def require_ray():
    """The ray module, or the one line that says how to install it (asked before anything starts)."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'fcn_perception[ray]' (or the ray version pinned in requirements/)") from None
    return ray


def _ray_task(inp: str, out: str, fp: dict, settings: Settings) -> dict:
    return asdict(replay_one(Path(inp), Path(out), fp, settings))


# -- the corpus ---------------------------------------------------------------------------------------
def _prepare(paths: list[str | Path], out_dir: Path) -> tuple[list[Input], list[str]]:
    """The recordings to replay (never our own outputs) and the files passed over; stale partial
    outputs of a killed run removed (never final, never reused)."""
    inputs, ignored = find_inputs(paths)
    inputs = [i for i in inputs if not i.path.resolve().is_relative_to(out_dir.resolve())]
    if not inputs:
        raise ValueError(f"no recordings found in {', '.join(map(str, paths))}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(out_dir.rglob(f"{PARTIAL}-*")):
        shutil.rmtree(stale, ignore_errors=True)
    return inputs, ignored


def _plan(inputs: list[Input], out_dir: Path, settings: Settings, force: bool) -> tuple[list, list, int | None]:
    """(outcomes with the current outputs already filled in as skipped, the jobs to run, the frames
    to expect: None once a recording cannot say how many it has)."""
    from fcn_perception.bags.camera_feed import camera_topics

    sha = model_sha256(settings.values)
    outcomes: list[RecordingOutcome | None] = [None] * len(inputs)
    jobs, total = [], 0
    for k, inp in enumerate(inputs):
        out = out_dir / inp.rel
        fp = fingerprint(inp.path, settings, sha)
        record = None if force else current_record(out, fp)
        if record is not None:
            outcomes[k] = RecordingOutcome(**{**record["outcome"], "status": "skipped", "reason": "output is final and current"})
            continue
        with contextlib.suppress(Exception):  # a bad input: found out (and reported) by its job
            rec = open_recording(inp.path)
            cams = camera_topics(rec)
            known = all(t in rec.counts for t in cams)
            total = total + sum(rec.counts[t] for t in cams) if known and total is not None else None
        jobs.append((k, inp.path, out, fp))
    return outcomes, jobs, total


def _totals(outcomes: list[RecordingOutcome], seconds: float, workers: int, settings: Settings, ray_address: str) -> dict:
    done = [o for o in outcomes if o.status == "done"]
    return {
        "recordings": len(outcomes),
        "done": len(done),
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "frames": sum(o.frames for o in done),
        "masks": sum(o.masks for o in done),
        "bad_frames": sum(o.bad_frames for o in done),
        "seconds": round(seconds, 2),
        "frames_per_s": round(sum(o.frames for o in done) / seconds, 2) if seconds else 0.0,
        "workers": workers,
        "threads_per_worker": settings.threads,
        "ray": ray_address or None,
    }


def replay_corpus(
    paths: list[str | Path],
    out_dir: str | Path,
    settings: Settings,
    workers: int = 1,
    ray_address: str = "",
    force: bool = False,
    progress: bool = True,
    export_uncertain: str | Path | None = None,
) -> dict:
    """Every recording under ``paths`` to ``out_dir``; returns (and writes) corpus.json's content.
    ``export_uncertain``: the corpus's least sure frames (``settings.uncertain``) as a labelling set."""
    from tqdm import tqdm

    from fcn_perception.bags.label_export import Candidate, check_out_dir, spread_lowest, write_label_set
    from fcn_perception.params.node_config import NodeConfig

    out_dir = Path(out_dir)
    if ray_address:
        require_ray()
    if export_uncertain:
        check_out_dir(export_uncertain)
        if settings.uncertain is None:
            raise ValueError("export_uncertain needs settings.uncertain = (top, min_gap_s)")
    inputs, ignored = _prepare(paths, out_dir)
    workers = max(1, workers)
    settings.threads = settings.threads or max(1, (os.cpu_count() or 1) // min(workers, len(inputs)))
    outcomes, jobs, total = _plan(inputs, out_dir, settings, force)
    start = time.perf_counter()
    with tqdm(total=total, desc="corpus", unit="frame", disable=not progress, dynamic_ncols=True) as bar:

        def record(index: int, outcome: RecordingOutcome) -> None:
            outcomes[index] = outcome
            bar.set_postfix(done=sum(o is not None for o in outcomes), failed=sum(o is not None and o.status == "failed" for o in outcomes))

        if ray_address:
            run_ray(jobs, settings, ray_address, workers, bar, record)
        elif workers == 1:
            for index, inp, out, fp in jobs:
                record(index, replay_one(inp, out, fp, settings, lambda: bar.update(1)))
        else:
            run_workers(jobs, settings, workers, bar, record)
    exported = None
    if export_uncertain:  # over the whole corpus: each input kept its cameras' candidates
        top, gap = settings.uncertain
        picks = spread_lowest((Candidate(**c) for o in outcomes if o.status != "failed" for c in o.uncertain), top, gap)
        exported = str(write_label_set(export_uncertain, picks, _pipeline(settings), NodeConfig.from_dict(settings.values)))
    result = {
        "inputs": [asdict(o) for o in outcomes],
        "ignored_files": ignored,
        "totals": _totals(outcomes, time.perf_counter() - start, workers, settings, ray_address),
    }
    result["exported"] = exported
    (out_dir / "corpus.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
