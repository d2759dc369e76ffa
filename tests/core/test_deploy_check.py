"""Production settings: `manage.py check --deploy` is clean, and missing secrets stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in {"WAFAA_TESTING", "DEBUG"}}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 20 + "production-like-secret-key-for-the-check-0123456789",
    "ALLOWED_HOSTS": "wafaa.example.com",
    "FIELD_ENCRYPTION_KEYS": "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAA=",
    "JWT_SIGNING_KEY": "jwt-" + "y" * 20 + "separate-production-like-signing-key-0123456789",
    "ACCOUNT_LINKS_BASE_URL": "https://app.wafaa.example.com",
}


def test_check_deploy_is_clean_with_production_like_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {**PRODUCTION, "SECRET_KEY": ""}
    del env["SECRET_KEY"]
    base = {
        k: v for k, v in os.environ.items() if k not in {"WAFAA_TESTING", "DEBUG", "SECRET_KEY"}
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
