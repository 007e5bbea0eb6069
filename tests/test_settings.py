"""Production settings: refuse to start without real secrets, and pass ``check --deploy`` when given them."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "fleetdeck.example.com",
    "DATABASE_URL": "postgresql://fleetdeck:pw@db.example.com:5432/fleetdeck",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Start from this environment minus what a test sets and what check --deploy rightly refuses.
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_secret_key_fails_with_a_clear_message():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "production mode" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr
    assert "DEBUG=true" in result.stderr  # says what to do for local development


def test_production_rejects_the_insecure_development_key_and_missing_hosts():
    env = {**PRODUCTION_ENV, "SECRET_KEY": "django-insecure-" + "x" * 60, "ALLOWED_HOSTS": ""}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert "ALLOWED_HOSTS must list" in result.stderr


def test_production_requires_database_and_broker_urls():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "DATABASE_URL must point" in result.stderr
    assert "CELERY_BROKER_URL must point" in result.stderr


def test_check_deploy_is_clean_in_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_malformed_boolean_is_reported_by_name():
    result = run_manage("check", env={**PRODUCTION_ENV, "SECURE_SSL_REDIRECT": "maybe"})
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT='maybe' is not a boolean" in result.stderr


def test_an_empty_data_dir_variable_means_the_default_not_the_working_directory(tmp_path):
    # .env.example ships FLEETDECK_DATA_DIR= empty; copying it must not put pgdata in whatever directory runs it.
    env = {**PRODUCTION_ENV, "FLEETDECK_DATA_DIR": ""}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings';"
            "from django.conf import settings; print(settings.DATA_DIR)",
        ],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(ROOT / ".fleetdeck")
