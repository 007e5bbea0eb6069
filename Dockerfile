# Fleetdeck production image: one image for web (gunicorn), worker and beat (celery).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

RUN useradd --create-home --uid 10001 fleetdeck

COPY pyproject.toml constraints.txt README.md ./
COPY config ./config
COPY core ./core
COPY fleet ./fleet
COPY billing ./billing
COPY scheduler ./scheduler
COPY audit ./audit
COPY dashboard ./dashboard
COPY devtools ./devtools
RUN pip install -c constraints.txt .

COPY manage.py ./
COPY templates ./templates
COPY static ./static
# collectstatic needs settings that import; these placeholders are build-time only, never used at run time.
RUN DEBUG=false SECRET_KEY=build-only-placeholder-build-only-placeholder-build-only-0123456789 \
    ALLOWED_HOSTS=build DATABASE_URL=postgresql://build@localhost/build CELERY_BROKER_URL=redis://build \
    python manage.py collectstatic --noinput -v0

USER fleetdeck
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--config", "python:config.gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--threads", "4", "--timeout", "60", \
     "--graceful-timeout", "30", "--access-logfile", "-"]
