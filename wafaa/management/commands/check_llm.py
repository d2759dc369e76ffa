"""`manage.py check_llm`: one tiny chat completion with the configured model, and the verdict.

For an operator after setting OPENAI_API_KEY / OPENAI_BASE_URL / LLM_MODEL, or when replies
fall back: it says whether the key, the base URL and the model work, how long a call takes,
and the error class (transient: retry later; permanent: fix the configuration) when not.
Exit code 0 when the call succeeded, 1 when it failed, 2 when no LLM is configured.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from wafaa.ai.llm import ChatClient, LLMError, LLMTransientError


class Command(BaseCommand):
    help = "Make one tiny call to the configured LLM and report latency and errors."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="another model than LLM_MODEL")

    def handle(self, *args, model: str | None = None, **options):
        model = model or settings.LLM_MODEL
        if not settings.OPENAI_API_KEY:
            self.stdout.write(
                "no LLM configured: OPENAI_API_KEY is not set, replies use the extractive "
                "answerer (offline mode)"
            )
            raise SystemExit(2)
        where = settings.OPENAI_BASE_URL or "the OpenAI API"
        client = ChatClient(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL,
            model=model,
            timeout=settings.LLM_TIMEOUT,
            max_retries=0,
        )
        started = time.perf_counter()
        try:
            result = client.complete(
                [{"role": "user", "content": "Reply with the single word: ok"}], max_tokens=5
            )
        except LLMError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            kind = "transient (retry later)" if isinstance(exc, LLMTransientError) else "permanent"
            self.stdout.write(
                f"FAILED model={model} at {where} after {elapsed:.0f} ms: {kind} error "
                f"[{exc.code}] {exc}"
            )
            raise SystemExit(1) from None
        self.stdout.write(
            f"OK model={result.model} at {where}: {result.latency_ms} ms, "
            f"tokens prompt={result.prompt_tokens} completion={result.completion_tokens}"
        )
