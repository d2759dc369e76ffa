"""Every environment variable the code reads is documented in .env.example and the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(
    r"""(?:env(?:_bool|_int|_float|_list)?\(|os\.environ(?:\.get)?\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]+)["']"""
)
SOURCES = [
    "config",
    "wafaa",
    "tenants",
    "channels_app",
    "knowledge",
    "conversations",
    "scripts/run.py",
]
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE", "PATH"}


def _read_variables() -> set[str]:
    names = set()
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else path.rglob("*.py")
        for file in files:
            if "settings_test" in file.name:
                continue
            names |= set(READS.findall(file.read_text()))
    return names - NOT_CONFIGURATION


def test_every_variable_read_is_in_env_example_and_the_readme():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    readme = (ROOT / "README.md").read_text()
    read = _read_variables()
    assert read, "the scan found no variables"
    assert read - documented == set(), "missing from .env.example"
    assert {name for name in documented if f"`{name}`" not in readme} == set(), (
        "missing from README"
    )
