"""The node's on-demand packager: jobs run in a process pool, progress comes back as bus events.

`node.services["packager"].submit(video_id, source_path, ladder=...)` returns once the job is
queued. Events on `node.bus`: `vod.progress` {"id", "percent", "stage"}, `vod.packaged`
{"id", "dir", "files"}, `vod.failed` {"id", "error"}. Output goes to `media_dir/vod/ID/`, which
the front door already serves at `/vod/ID/...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import re
import shutil
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivecast.media.packaging.vod import PackagingError, package_file

if TYPE_CHECKING:
    from hivecast.node.node import Node

log = logging.getLogger(__name__)
VIDEO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

_progress_queue: Any = None


def _worker_init(q: Any) -> None:
    global _progress_queue
    _progress_queue = q


def _run_job(video_id: str, source: str, out_dir: str, ladder: list[str] | None,
             segment_seconds: float) -> dict[str, Any]:
    """In the worker process: package and report progress through the shared queue."""
    def progress(percent: float, stage: str) -> None:
        if _progress_queue is not None:
            with contextlib.suppress(Exception):
                _progress_queue.put_nowait((video_id, round(percent, 1), stage))

    try:
        result = package_file(Path(source), Path(out_dir), ladder=ladder, segment_seconds=segment_seconds,
                              progress=progress, replace=True)
    except PackagingError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug or a library failure: still a failed job with a reason
        return {"ok": False, "error": f"packaging failed: {type(exc).__name__}: {exc}"}
    return {"ok": True, "files": result.files, "duration": result.duration}


class PackagerService:
    name = "packager"

    def __init__(self) -> None:
        self._node: Node | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self.jobs: dict[str, dict[str, Any]] = {}

    async def start(self, node: Node) -> None:
        self._node = node
        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue(maxsize=10_000)
        self._pool = ProcessPoolExecutor(max_workers=node.settings.packaging.workers, mp_context=ctx,
                                         initializer=_worker_init, initargs=(self._queue,))
        loop = asyncio.get_running_loop()
        self._reader = threading.Thread(target=self._forward, args=(loop,), name="packager-progress", daemon=True)
        self._reader.start()
        node.services["packager"] = self
        # Work directories of jobs (or recordings) a previous run did not finish.
        vod = node.settings.media_dir / "vod"
        if vod.is_dir():
            for leftover in [*vod.glob(".*.partial"), *vod.glob(".*.recording"), *vod.glob(".*.old-*")]:
                shutil.rmtree(leftover, ignore_errors=True)

    def _forward(self, loop: asyncio.AbstractEventLoop) -> None:
        """Progress from the workers onto the bus (a thread, since the queue blocks)."""
        while not self._stopping.is_set():
            try:
                video_id, percent, stage = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError, ValueError):
                return
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._progress, video_id, percent, stage)

    def _progress(self, video_id: str, percent: float, stage: str) -> None:
        job = self.jobs.get(video_id)
        if job is not None and job["state"] == "running":
            job.update(percent=percent, stage=stage)
        if self._node is not None:
            self._node.bus.publish("vod.progress", {"id": video_id, "percent": percent, "stage": stage})

    async def submit(self, video_id: str, source_path: Path, *, ladder: list[str] | None = None) -> None:
        node = self._node
        if node is None or self._pool is None:
            raise RuntimeError("packager is not running")
        if not VIDEO_ID.fullmatch(video_id):
            raise ValueError(f"bad video id {video_id!r}")
        if self.jobs.get(video_id, {}).get("state") in ("queued", "running"):
            raise ValueError(f"video {video_id} is already being packaged")
        out_dir = node.settings.media_dir / "vod" / video_id
        settings = node.settings.packaging
        chosen = ladder if ladder is not None else (list(settings.ladder) or None)
        self.jobs[video_id] = {"state": "queued", "percent": 0.0, "stage": "queued"}
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, _run_job, video_id, str(source_path), str(out_dir), chosen, settings.segment_seconds)
        self.jobs[video_id]["state"] = "running"
        node.spawn(self._finish(video_id, out_dir, future), name=f"packager:{video_id}")

    async def _finish(self, video_id: str, out_dir: Path, future: asyncio.Future[dict[str, Any]]) -> None:
        assert self._node is not None
        bus = self._node.bus
        try:
            outcome = await future
        except Exception as exc:  # the worker died (killed, out of memory), or the node is stopping
            reason = "the node stopped before the job finished" if self._stopping.is_set() else \
                f"packaging worker failed: {exc!r}"
            outcome = {"ok": False, "error": reason}
        if outcome["ok"]:
            self.jobs[video_id] = {"state": "done", "percent": 100.0, "stage": "done"}
            bus.publish("vod.packaged", {"id": video_id, "dir": str(out_dir), "files": outcome["files"]})
            log.info("packaged video %s (%d files)", video_id, len(outcome["files"]))
        else:
            # A worker that died mid-job could not remove its work directory itself.
            for leftover in out_dir.parent.glob(f".{video_id}.*.partial"):
                shutil.rmtree(leftover, ignore_errors=True)
            self.jobs[video_id] = {"state": "failed", "error": outcome["error"]}
            bus.publish("vod.failed", {"id": video_id, "error": outcome["error"]})
            log.warning("packaging video %s failed: %s", video_id, outcome["error"])

    def status(self, video_id: str) -> dict[str, Any] | None:
        return self.jobs.get(video_id)

    async def stop(self) -> None:
        """End the workers (a running job would hold shutdown for minutes), then release the pool's
        and the progress queue's named semaphores here and now: left to interpreter exit, a process
        that is then killed leaves them to the resource tracker, which reports them as leaked."""
        self._stopping.set()
        loop = asyncio.get_running_loop()
        if self._pool is not None:
            pool = self._pool
            self._pool = None
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            await loop.run_in_executor(None, _reap, processes, pool)
        if self._reader is not None:
            await loop.run_in_executor(None, self._reader.join, 1.0)
            self._reader = None
        if self._queue is not None:
            progress, self._queue = self._queue, None
            with contextlib.suppress(Exception):
                progress.close()
                progress.cancel_join_thread()


def _reap(processes: list[Any], pool: ProcessPoolExecutor) -> None:
    """Wait for terminated workers (SIGKILL for one that ignores SIGTERM), then for the pool's own
    thread, which closes its call and result queues once it sees the workers gone."""
    for process in processes:
        process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
    pool.shutdown(wait=True)
