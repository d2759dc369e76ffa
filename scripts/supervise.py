"""A small process supervisor for `make run`: the Procfile's processes, each restarted when it
dies, with backoff; Ctrl-C or SIGTERM stops them all.

Why not honcho (used before): honcho stops every process as soon as one exits, so a worker
killed by a broker hiccup took the web and beat down with it until someone noticed. Here a
process that exits is started again after `backoff_delay` (1 s, 2 s, 4 s ... capped at 30 s;
back to 1 s once it has run for a minute), and its siblings keep running.
Output lines are prefixed with the time and the process name, like honcho's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wafaa.backoff import backoff_delay  # noqa: E402 - after the path set-up

STABLE_AFTER_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0


def read_procfile(path: Path) -> dict[str, str]:
    processes = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, command = line.split(":", 1)
        processes[name.strip()] = command.strip()
    return processes


@dataclass
class Process:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    starts: int = 0
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        processes: dict[str, str],
        *,
        env: dict | None = None,
        cwd: Path = ROOT,
        backoff_base: float = 1.0,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        stable_after: float = STABLE_AFTER_SECONDS,
        out=None,
    ):
        self.processes = [Process(name, command) for name, command in processes.items()]
        self.env = env
        self.cwd = cwd
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stable_after = stable_after
        self.out = out or sys.stdout
        self.stopping = threading.Event()
        self.width = max((len(p.name) for p in self.processes), default=4) + 1
        self._lock = threading.Lock()

    def _print(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name.ljust(self.width)}| {line}\n")
            self.out.flush()

    def _start(self, process: Process) -> None:
        # The shell expands the Procfile's ${VAR:-default}; exec keeps one process per entry.
        # A session of its own: a stop signal reaches the process and its children together.
        process.proc = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {process.command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.started_at = time.monotonic()
        process.starts += 1
        self._print(process.name, f"started (pid {process.proc.pid})")
        threading.Thread(target=self._pump, args=(process, process.proc), daemon=True).start()

    def _pump(self, process: Process, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            self._print(process.name, raw.decode(errors="replace").rstrip())
        proc.stdout.close()

    def _reap(self, process: Process) -> None:
        code = process.proc.poll()
        if code is None:
            return
        process.exits.append(code)
        ran = time.monotonic() - process.started_at
        process.failures = 0 if ran >= self.stable_after else process.failures + 1
        delay = backoff_delay(
            max(process.failures - 1, 0), base=self.backoff_base, cap=self.backoff_cap
        )
        process.next_start = time.monotonic() + delay
        process.proc = None
        self._print(process.name, f"exited with {code} after {ran:.0f} s; restart in {delay:.1f} s")

    def run(self) -> int:
        for process in self.processes:
            self._start(process)
        while not self.stopping.wait(0.2):
            for process in self.processes:
                if process.proc is not None:
                    self._reap(process)
                elif time.monotonic() >= process.next_start:
                    self._start(process)
        return self._stop_all()

    def stop(self, *_args) -> None:
        self.stopping.set()

    def _stop_all(self) -> int:
        running = [p for p in self.processes if p.proc is not None and p.proc.poll() is None]
        for process in running:
            self._print(process.name, "stopping")
            self._signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._print(process.name, "did not stop in time: killed")
                self._signal(process, signal.SIGKILL)
                process.proc.wait()
        return 0

    @staticmethod
    def _signal(process: Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.proc.pid, sig)


def main(procfile: Path, env: dict | None = None) -> int:
    supervisor = Supervisor(read_procfile(procfile), env=env)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Procfile"))
