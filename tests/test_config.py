from __future__ import annotations

from pathlib import Path

import pytest

from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.fhir_base == "http://127.0.0.1:8080/fhir"
    assert settings.uses_embedded_db
    assert settings.db_backend == "postgresql"


def test_env_overrides() -> None:
    settings = Settings.from_env(
        {"FHIRHUB_PORT": "9000", "MONGODB_URI": "mongodb://db:27017/", "FHIRHUB_SEED": "off"}
    )
    assert settings.port == 9000
    assert settings.fhir_base.endswith(":9000/fhir")
    assert not settings.uses_embedded_db
    assert settings.effective_mongodb_uri == "mongodb://db:27017/"
    assert settings.seed_on_empty is False


@pytest.mark.parametrize(
    "env",
    [{"FHIRHUB_PORT": "x"}, {"FHIRHUB_DB_BACKEND": "oracle"}, {"FHIRHUB_SEED": "maybe"}],
)
def test_bad_values_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env(env)


def test_access_log_is_a_setting() -> None:
    from fhirhub.launcher import gunicorn_command

    assert "--access-logfile" not in gunicorn_command(Settings.from_env({}))
    logged = gunicorn_command(Settings.from_env({"FHIRHUB_ACCESS_LOG": "on"}))
    assert logged[logged.index("--access-logfile") + 1] == "-"


def test_a_relative_var_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL runs in its data directory: a relative path would no longer point there.
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"FHIRHUB_VAR_DIR": "var/here"})
    assert settings.var_dir == tmp_path / "var" / "here"
