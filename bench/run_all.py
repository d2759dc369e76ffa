"""`make bench`: every benchmark in turn, each printing its figures and writing bench/results/.

The full sizes take a while on 2 cores (the 1,000-client run about 15 minutes, 100k-chunk
retrieval a few minutes); `--quick` runs smaller sizes for a first look.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    options = parser.parse_args()
    runs = [
        ["webhook.py"],
        ["pipeline.py"] + (["--messages", "150"] if options.quick else []),
        ["retrieval.py"] + (["--sizes", "10000"] if options.quick else []),
        ["ingest.py"] + (["--chunks", "300"] if options.quick else []),
        ["bombs.py"] + (["--repeat", "3", "--raised-rows", "0"] if options.quick else []),
        ["tenants.py", "--clients", "50" if options.quick else "1000"],
        ["outbound.py"] + (["--calls", "100"] if options.quick else []),
        ["auth.py"] + (["--logins", "50", "--signups", "5"] if options.quick else []),
        ["inbox.py"] + (["--conversations", "300", "--repeat", "100"] if options.quick else []),
    ]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    failed = []
    for args in runs:
        print(f"\n=== bench/{' '.join(args)}", flush=True)
        if subprocess.run(
            [sys.executable, str(ROOT / "bench" / args[0]), *args[1:]], env=env
        ).returncode:
            failed.append(args[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
