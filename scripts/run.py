"""`make run`: prepare the database and demo data, then run web, worker and beat together.

scripts/supervise.py runs the Procfile in the foreground and restarts a process that dies
(a worker killed by a broker hiccup comes back; its siblings keep running); Ctrl-C or SIGTERM
stops every process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            print(
                f"run: port {port} is already in use (another `make run`?). "
                f"Stop it, or choose another port: PORT={port + 1} make run",
                file=sys.stderr,
            )
            return 1
    env = dict(os.environ)
    env.setdefault("PORT", str(port))
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(ROOT / ".run" / "prometheus"))
    # Web and worker share the metrics directory, so /metrics shows both. Emptied here, once,
    # before either starts (gunicorn would otherwise empty it under a running worker).
    shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_WIPE_ON_START"] = "false"
    # Static files are served from the apps in development (whitenoise); an empty STATIC_ROOT
    # only keeps whitenoise from warning that it is missing.
    (ROOT / "staticfiles").mkdir(exist_ok=True)
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    python = sys.executable
    setup = subprocess.run([python, "manage.py", "bootstrap", "--demo"], cwd=ROOT, env=env)
    if setup.returncode != 0:
        print("run: database set-up failed (see above)", file=sys.stderr)
        return setup.returncode
    print(f"run: Wafaa on http://127.0.0.1:{port}/ (health: /health, API docs: /api/docs/)")
    os.chdir(ROOT)
    os.execve(python, [python, str(ROOT / "scripts" / "supervise.py"), "Procfile"], env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
