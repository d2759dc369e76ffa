"""Hardening (issue 10, finding 13): production refuses to start on settings that would make
it guessable or testing-grade.

With DEBUG=false: a short or `django-insecure` SECRET_KEY, a missing JWT_SIGNING_KEY (or one
equal to SECRET_KEY), WAFAA_TESTING, and account-email links (one-time tokens) over plain HTTP
each stop start-up with a message naming the setting.
"""

from __future__ import annotations

import pytest

from tests.core.test_deploy_check import PRODUCTION, _manage

STRONG = "k" * 10 + "a-strong-enough-production-secret-key-abcdefghij0123"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SECRET_KEY": "short-secret"}, "SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}, "SECRET_KEY"),
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": PRODUCTION["SECRET_KEY"]}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": "too-short"}, "JWT_SIGNING_KEY"),
        ({"WAFAA_TESTING": "1"}, "WAFAA_TESTING"),
        ({"ACCOUNT_LINKS_BASE_URL": "http://app.wafaa.example.com"}, "ACCOUNT_LINKS_BASE_URL"),
    ],
    ids=[
        "short-secret",
        "django-insecure",
        "one-character",
        "no-jwt-key",
        "jwt-key-is-secret-key",
        "weak-jwt-key",
        "testing-in-production",
        "account-links-over-http",
    ],
)
def test_production_refuses_to_start(overrides, named):
    result = _manage("check", **{**PRODUCTION, **overrides})

    assert result.returncode != 0
    assert named in result.stderr
    assert "RuntimeError" in result.stderr


def test_production_starts_with_strong_separate_keys():
    result = _manage("check", **{**PRODUCTION, "SECRET_KEY": STRONG})

    assert result.returncode == 0, result.stderr
