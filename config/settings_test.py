"""Settings for the test suite: the real settings, with test defaults set before they load.

pytest-django uses this module (pyproject.toml); worker and gunicorn processes started by the
tests inherit the same environment. Each default can still be overridden from outside.
"""

import os

os.environ.setdefault("WAFAA_TESTING", "1")
# Tests build their AI clients against the fake OpenAI server; a real key never leaks in.
os.environ["OPENAI_API_KEY"] = ""
os.environ.setdefault("EMBEDDING_BACKEND", "hashing")
os.environ.setdefault("REPLY_QUIET_PERIOD_SECONDS", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from config.settings import *  # noqa: F403
