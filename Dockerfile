FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=config.settings
WORKDIR /app
COPY requirements.txt .
# Every package, transitive ones included, pinned with its hashes (make lock).
RUN pip install --no-cache-dir --require-hashes -r requirements.txt
COPY . .
# Admin and API-docs assets, compressed, served by the app (whitenoise).
RUN python manage.py collectstatic --noinput
RUN useradd --system --uid 10001 wafaa && mkdir -p /tmp/prometheus && chown wafaa /tmp/prometheus
USER wafaa
EXPOSE 8000
# The web process by default; docker-compose gives worker and beat their own checks
# (python -m wafaa.healthcheck worker|beat: a recent heartbeat in Redis).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-m", "wafaa.healthcheck", "web"]
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
