"""`manage.py check_llm` against the fake OpenAI server: latency when it works, the error
class when it does not, and a clear word when no LLM is configured."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.fixture
def llm_settings(settings, fake_llm):
    settings.OPENAI_API_KEY = "test-key-for-the-fake-server"
    settings.OPENAI_BASE_URL = fake_llm.url
    settings.LLM_TIMEOUT = 2
    return settings


def _run(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_llm", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_a_working_model_reports_ok_with_latency(llm_settings, fake_llm):
    fake_llm.reply_with("ok")
    code, out = _run()
    assert code == 0
    assert out.startswith("OK model=")
    assert " ms, tokens prompt=" in out
    [call] = fake_llm.chat_calls
    assert call["model"] == llm_settings.LLM_MODEL
    assert call["max_tokens"] == 5


def test_a_rejected_key_is_a_permanent_failure(llm_settings, fake_llm):
    fake_llm.fail_next(401, message="Incorrect API key provided")
    code, out = _run()
    assert code == 1
    assert "FAILED" in out and "permanent" in out
    assert "test-key-for-the-fake-server" not in out  # never the key itself


def test_a_server_error_is_reported_as_transient(llm_settings, fake_llm):
    fake_llm.fail_next(503)
    code, out = _run("--model", "other-model")
    assert code == 1
    assert "model=other-model" in out and "transient" in out


def test_a_hanging_server_fails_at_the_timeout(llm_settings, fake_llm):
    llm_settings.LLM_TIMEOUT = 0.5
    fake_llm.hang_next(3)
    code, out = _run()
    assert code == 1 and "transient" in out


def test_without_a_key_it_says_offline_mode(settings):
    settings.OPENAI_API_KEY = ""
    code, out = _run()
    assert code == 2
    assert "offline" in out
