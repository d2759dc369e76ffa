"""Settings for the test suite: the real settings, with test defaults set before they load.

pytest-django uses this module (pyproject.toml); worker and gunicorn processes started by the
tests inherit the same environment. Each default can still be overridden from outside.
"""

import os
import uuid

os.environ.setdefault("WAFAA_TESTING", "1")
# Tests build their AI clients against the fake OpenAI server; a real key never leaks in.
os.environ["OPENAI_API_KEY"] = ""
os.environ.setdefault("EMBEDDING_BACKEND", "hashing")
os.environ.setdefault("REPLY_QUIET_PERIOD_SECONDS", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The fake servers (callback receivers) listen on 127.0.0.1; nothing else non-public passes.
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1/32")
# Nothing in a test may reach Meta: a Graph call not pointed at the fake is refused locally.
os.environ.setdefault("GRAPH_API_BASE_URL", "http://127.0.0.1:9")
# This session's own broker namespace: its worker never takes another run's tasks (nor a task
# left behind by an earlier run for a client that no longer exists).
os.environ.setdefault("CELERY_BROKER_KEYPREFIX", f"test-{uuid.uuid4().hex[:10]}:")

from config.settings import *  # noqa: F403
