"""scripts/backup.sh (the compose `backup` service): a restorable dump, with retention."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from django.db import connection

from tests.conftest import ROOT


def _pg_tool(name: str) -> str:
    spec = importlib.util.find_spec("pgserver")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def test_dumps_are_kept_to_the_newest_n_and_restore_lists_every_schema(tenant_a, tmp_path):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "BACKUP_DIR": str(tmp_path),
        "BACKUP_KEEP": "2",
        "PG_DUMP": _pg_tool("pg_dump"),
    }
    for _ in range(3):
        done = subprocess.run(
            ["sh", "scripts/backup.sh", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("backup: ")
    dumps = sorted(tmp_path.glob("wafaa-*.dump"))
    assert len(dumps) == 2  # retention
    assert not list(tmp_path.glob("*.partial"))
    listing = subprocess.run(
        [_pg_tool("pg_restore"), "--list", str(dumps[-1])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"TABLE {tenant_a.schema_name} knowledge_chunk" in listing
    assert "TABLE public tenants_client" in listing


def test_a_failed_dump_leaves_no_file_that_looks_good(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "BACKUP_DIR": str(tmp_path),
        "PG_DUMP": _pg_tool("pg_dump"),
    }
    done = subprocess.run(
        ["sh", "scripts/backup.sh", "--once"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert not list(tmp_path.glob("wafaa-*.dump"))
