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


def make_dev_env(folder: Path, **env: str) -> Path:
    """Run the Makefile's ``dev-env`` target (what ``make demo`` runs first) in ``folder``; the file it writes."""
    subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(folder), "dev-env"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder / ".fleetdeck" / "dev.env"


def run_without_debug(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py`` with this environment minus DEBUG (the test's database and broker stay: nothing embedded)."""
    base = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "FLEETDECK_ENV_FILE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_commands_start_with_the_env_file_make_demo_writes_and_refuse_without_it(tmp_path):
    env_file = make_dev_env(tmp_path)
    assert env_file.read_text().splitlines()[1:] == ["DEBUG=true"]  # nothing else from the environment

    with_file = run_without_debug("check", env={"FLEETDECK_ENV_FILE": str(env_file)})
    assert with_file.returncode == 0, with_file.stderr
    assert "no issues" in with_file.stdout

    for no_file in (str(tmp_path / "missing.env"), ""):
        result = run_without_debug("check", env={"FLEETDECK_ENV_FILE": no_file})
        assert result.returncode != 0
        assert "production mode" in result.stderr


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = make_dev_env(tmp_path)
    result = run_without_debug("check", env={"FLEETDECK_ENV_FILE": str(env_file), "DEBUG": "false"})
    assert result.returncode != 0
    assert "production mode" in result.stderr


def test_the_env_file_points_commands_at_the_demos_data_folder(tmp_path):
    # The embedded database lives under FLEETDECK_DATA_DIR: a demo started with another folder writes it down.
    env_file = make_dev_env(tmp_path, FLEETDECK_DATA_DIR=str(tmp_path / "data"))
    assert f"FLEETDECK_DATA_DIR={tmp_path / 'data'}" in env_file.read_text().splitlines()
    result = run_without_debug(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DEBUG, settings.DATA_DIR)",
        env={"FLEETDECK_ENV_FILE": str(env_file)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["True", str(tmp_path / "data")]


def test_make_demo_never_touches_the_operators_env_and_settings_never_read_it(tmp_path):
    """.env is docker compose's production file: the demo writes its own file beside it, and a manage.py command
    without DEBUG in its environment does not pick up the production file's values (nor the demo's DEBUG)."""
    (tmp_path / ".env").write_text("SECRET_KEY=the-operators-own\n")
    env_file = make_dev_env(tmp_path)
    assert (tmp_path / ".env").read_text() == "SECRET_KEY=the-operators-own\n"
    assert env_file.read_text().splitlines()[1:] == ["DEBUG=true"]
    from config import settings as project_settings

    assert project_settings.DEV_ENV_FILE == ROOT / ".fleetdeck" / "dev.env"


def test_a_dollar_in_an_env_file_value_is_kept(tmp_path):
    env_file = tmp_path / "dev.env"
    env_file.write_text("DEBUG=true\nFLEETDECK_TEST_DOLLAR=pa$$word${HOME}\n")
    result = run_without_debug(
        "shell",
        "-c",
        "import os; print(os.environ['FLEETDECK_TEST_DOLLAR'])",
        env={"FLEETDECK_ENV_FILE": str(env_file)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "pa$$word${HOME}"


def test_the_env_file_is_git_ignored_and_not_copied_into_the_image():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    copied = [line.split()[1:-1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")]
    assert all(".env" not in sources and "." not in sources for sources in copied), copied
