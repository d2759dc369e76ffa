"""Extraction and chunking of one document in a child process with a memory ceiling.

The ingest worker never parses an uploaded file itself. `extract_in_child` starts
`python -m knowledge.sandbox` (pure Python, no Django), which sets its own limits before it
reads anything: RLIMIT_AS (address space: a decompression or complexity bomb gets a
MemoryError in the child, never in the worker) and RLIMIT_CPU (a parser stuck in a loop is
killed), and runs `knowledge.extraction.extract` (itself capped by `Limits`) and
`knowledge.chunking.chunk_document` (capped by the plan's chunks per document). The child
writes its result to a file, one JSON line of facts then one line per chunk, and the worker
reads the chunks back one at a time, so the worker's memory does not grow with them.

Whatever happens in the child (a cap, MemoryError, a crash, the wall-clock timeout), the
worker gets an `ExtractionError` with a stable code and a message for the uploader.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from knowledge.chunking import ChunkDraft, chunk_document
from knowledge.extraction import ExtractionError, Limits, extract

ROOT = Path(__file__).resolve().parent.parent

EXTRACTION_MEMORY_LIMIT = "extraction_memory_limit"
EXTRACTION_TIMEOUT = "extraction_timeout"
EXTRACTION_CRASHED = "extraction_crashed"
# How much text the worker gets back for language detection.
LANGUAGE_SAMPLE_CHARS = 4000


@dataclass(frozen=True)
class ChildConfig:
    kind: str
    limits: dict
    target_tokens: int
    max_tokens: int
    overlap_tokens: int
    max_chunks: int
    memory_bytes: int
    cpu_seconds: int


@dataclass
class ChildResult:
    """What the child found; `drafts` is read lazily from the child's output file."""

    title: str | None
    page_count: int | None
    warnings: list[str]
    language_sample: str
    chunks_total: int
    drafts: Iterator[ChunkDraft] = field(repr=False)


@contextmanager
def extract_in_child(
    data: bytes,
    *,
    kind: str,
    limits: Limits,
    target_tokens: int,
    max_tokens: int,
    overlap_tokens: int,
    max_chunks: int,
    memory_mb: int,
    timeout_seconds: float,
) -> Iterator[ChildResult]:
    """Extract and chunk `data` in a child process; yields its result while its output file
    exists (iterate `drafts` inside the `with`). Raises `ExtractionError`."""
    config = ChildConfig(
        kind=kind,
        limits=asdict(limits),
        target_tokens=target_tokens,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
        max_chunks=max_chunks,
        memory_bytes=memory_mb * 1024 * 1024,
        # The wall clock is the worker's guard; this stops a child spinning on the CPU even
        # if the worker is gone.
        cpu_seconds=max(1, int(timeout_seconds) + 5),
    )
    with tempfile.TemporaryDirectory(prefix="wafaa-extract-") as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(asdict(config)))
        (folder / "input").write_bytes(data)
        output = folder / "output.jsonl"
        _run_child(folder, timeout_seconds, memory_mb)
        if not output.exists():
            raise ExtractionError(EXTRACTION_CRASHED, _crashed_message())
        with output.open(encoding="utf-8") as lines:
            header = json.loads(lines.readline() or "null") or {}
            if not header.get("ok"):
                raise ExtractionError(
                    header.get("code") or EXTRACTION_CRASHED,
                    header.get("message") or _crashed_message(),
                )
            yield ChildResult(
                title=header.get("title"),
                page_count=header.get("page_count"),
                warnings=list(header.get("warnings") or []),
                language_sample=header.get("language_sample") or "",
                chunks_total=int(header["chunks_total"]),
                drafts=_drafts(lines),
            )


def child_environment() -> dict[str, str]:
    """Not the worker's environment: a parser exploited by a hostile file finds no database
    URL, key or secret there."""
    env = {
        name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # One thread per native library: thread pools reserve address space under RLIMIT_AS.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def _run_child(folder: Path, timeout_seconds: float, memory_mb: int) -> None:
    env = child_environment()
    with (folder / "stderr").open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own module, a fixed argv
            [sys.executable, "-m", "knowledge.sandbox", str(folder)],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its own process group: a timeout kills it whole
        )
        try:
            returncode = process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise _timeout(timeout_seconds) from None
        except BaseException:
            # The task's own time limit, or the worker shutting down: never leave it behind.
            _kill(process)
            raise
    if returncode == -signal.SIGXCPU:
        raise _timeout(timeout_seconds)
    if returncode != 0:
        # MemoryError is reported by the child itself; a native library may instead abort
        # or crash when an allocation fails under the ceiling.
        raise ExtractionError(
            EXTRACTION_CRASHED if returncode > 0 else EXTRACTION_MEMORY_LIMIT,
            _crashed_message() if returncode > 0 else _memory_message(memory_mb),
        )


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _drafts(lines) -> Iterator[ChunkDraft]:
    for line in lines:
        row = json.loads(line)
        yield ChunkDraft(row["o"], row["t"], row["n"], row["m"])


def _timeout(seconds: float) -> ExtractionError:
    return ExtractionError(
        EXTRACTION_TIMEOUT,
        f"Reading this document took longer than {seconds:.0f} s and was stopped. "
        "Split it into smaller documents, or save it again as plain text or PDF.",
    )


def _memory_message(memory_mb: int) -> str:
    return (
        f"Reading this document needed more than {memory_mb} MB of memory and was stopped. "
        "Split it into smaller documents, or save it again as plain text or PDF."
    )


def _crashed_message() -> str:
    return (
        "This document could not be read (the reader stopped on it). Save it again as PDF "
        "or plain text and upload that; if it fails again, contact Wafaa support."
    )


# --------------------------------------------------------------------------------------------
# The child
# --------------------------------------------------------------------------------------------


def _set_limits(config: dict) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"], config["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_CPU, (config["cpu_seconds"], config["cpu_seconds"] + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _extract_and_chunk(data: bytes, config: dict) -> tuple[dict, list[ChunkDraft]]:
    doc = extract(data, config["kind"], Limits(**config["limits"]))
    drafts = chunk_document(
        doc,
        target_tokens=config["target_tokens"],
        max_tokens=config["max_tokens"],
        overlap_tokens=config["overlap_tokens"],
        max_chunks=config["max_chunks"],
    )
    header = {
        "ok": True,
        "title": doc.title,
        "page_count": doc.page_count,
        "warnings": doc.warnings,
        "language_sample": doc.text[:LANGUAGE_SAMPLE_CHARS],
        "chunks_total": len(drafts),
    }
    return header, drafts


def child_main(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    _set_limits(config)
    failure = None
    try:
        header, drafts = _extract_and_chunk((folder / "input").read_bytes(), config)
    except ExtractionError as exc:
        failure = {"ok": False, "code": exc.code, "message": exc.message}
    except MemoryError:
        # Whatever was built is unreachable once this block ends; the report is small.
        failure = {
            "ok": False,
            "code": EXTRACTION_MEMORY_LIMIT,
            "message": _memory_message(config["memory_bytes"] // (1024 * 1024)),
        }
    except RecursionError:
        failure = {"ok": False, "code": EXTRACTION_CRASHED, "message": _crashed_message()}
    # errors="replace": a lone surrogate from a damaged PDF must not lose the whole document.
    with (folder / "output.jsonl").open("w", encoding="utf-8", errors="replace") as out:
        if failure is not None:
            out.write(json.dumps(failure) + "\n")
            return 0
        out.write(json.dumps(header, ensure_ascii=False) + "\n")
        for d in drafts:
            row = {"o": d.ordinal, "t": d.text, "n": d.token_count, "m": d.metadata}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main(Path(sys.argv[1])))
