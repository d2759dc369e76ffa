"""The shipped docker-compose.yml: every long-running process restarts by itself and has a
health check that a deploy can wait on (Docker is not on the test machines: the file is
checked here, and each check command is tested in tests/core/test_healthcheck.py)."""

import yaml

from tests.conftest import ROOT


def _services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def test_every_long_running_service_restarts_by_itself():
    for name, service in _services().items():
        if not _one_shot(service):
            assert service.get("restart") == "unless-stopped", name


def test_every_long_running_service_has_a_health_check():
    for name, service in _services().items():
        if _one_shot(service):
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), name


def test_wafaa_processes_use_the_wafaa_health_checks():
    for name, service in _services().items():
        command = " ".join(service.get("command") or [])
        test = " ".join(service.get("healthcheck", {}).get("test") or [])
        if "gunicorn" in command:
            assert test.endswith("wafaa.healthcheck web"), name
        elif "celery" in command and " worker" in command:
            assert test.endswith("wafaa.healthcheck worker"), name
        elif "celery" in command and " beat" in command:
            assert test.endswith("wafaa.healthcheck beat"), name
