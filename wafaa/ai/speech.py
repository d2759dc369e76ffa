"""Speech to text for customers' voice notes (OpenAI's transcription endpoint).

`Transcriber` wraps the openai SDK's `audio.transcriptions` with a timeout always set and no
SDK retries, like the chat client; its errors are mapped at this boundary to
`TranscriptionError` (transient or not), never leaking the API key. Plain Python: no Django.
"""

from __future__ import annotations

from wafaa.ai import AIServiceError, classify_openai_error


class TranscriptionError(AIServiceError):
    default_code = "transcription_failed"


class TranscriptionTransientError(TranscriptionError):
    transient = True


class Transcriber:
    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        model: str = "gpt-4o-mini-transcribe",
        timeout: float = 30.0,
    ):
        import openai

        if not api_key:
            raise ValueError("Transcriber needs an API key")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0
        )

    def transcribe(self, audio: bytes, *, filename: str, mime_type: str) -> str:
        """The words spoken in `audio` (any language), stripped; '' when nothing was said."""
        import openai

        try:
            result = self._client.audio.transcriptions.create(
                model=self.model, file=(filename, audio, mime_type or "audio/ogg")
            )
        except openai.OpenAIError as exc:
            failure = classify_openai_error(
                exc,
                service="transcription service",
                model=self.model,
                api_key=self._api_key,
                timeout=self.timeout,
            )
            error_class = TranscriptionTransientError if failure.transient else TranscriptionError
            raise error_class(
                failure.message, code=failure.code, status_code=failure.status_code
            ) from None
        return (getattr(result, "text", "") or "").strip()
