"""One typed settings object: environment variables with a `KIT_` prefix, or a `.env` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Backend = Literal["auto", "local", "remote"]
UI = Literal["gradio", "streamlit"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the checkout (or site-packages)


class KitSettings(BaseSettings):
    """Where the kit keeps its files and how the demo is exposed.

    Every field can be set as `KIT_<NAME>` in the environment or in `.env`.
    """

    model_config = SettingsConfigDict(env_prefix="KIT_", env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.cwd() / ".kit",
        description="Folder for model artifacts, state and logs (git-ignored).",
    )
    backend: Backend = "auto"
    auth: SecretStr | None = Field(
        default=None, description="USER:PASS required from testers when the demo is shared."
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key the model service requires (and the client sends)."
    )
    service_url: str | None = Field(
        default=None,
        description="URL of the model service for the remote backend (e.g. in the UI image); "
        "when set, the state file of `kit promote` is not read.",
    )
    channel_url: str | None = Field(
        default=None,
        description="Broker that every replica of the service follows for model versions "
        "(nats://HOST:PORT); unset: the service's own file on this machine.",
    )
    prediction_log: str | None = Field(
        default=None,
        description="Log what the service answers (off by default): a folder, or `on` for "
        "<home>/prediction-log; `kit monitor` reads it.",
    )
    prediction_log_sample: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="The share of predictions the log keeps (e.g. 0.1), drawn at random.",
    )
    lan_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - sharing on the LAN is the point, and requires auth
        description="Address the demo binds when it is shared on the local network.",
    )

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_no_key(cls, value: SecretStr | None) -> SecretStr | None:
        """`KIT_API_KEY=` (set but empty, or blank) is no key at all: never a key that every
        caller 'knows'. Serving beyond loopback then stays refused, as without the variable."""
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("service_url")
    @classmethod
    def _service_url_is_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # `KIT_SERVICE_URL=` is no URL: the state file decides, as without it
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"KIT_SERVICE_URL must start with http:// or https://, got {url!r}")
        return url

    @field_validator("channel_url")
    @classmethod
    def _blank_channel_is_none(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None  # checked where it is used

    @field_validator("auth")
    @classmethod
    def _auth_has_user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            parse_auth(value.get_secret_value())
            return value
        return None

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def current_file(self) -> Path:
        return self.home / "current.json"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def prediction_log_dir(self) -> Path | None:
        """Where the service logs its predictions (None: not logging)."""
        value = (self.prediction_log or "").strip()
        if value.lower() in ("", "off", "false", "0", "no"):
            return None
        if value.lower() in ("on", "true", "1", "yes"):
            return self.home / "prediction-log"
        return Path(value).expanduser()

    @property
    def feedback_db(self) -> Path:
        """Testers' feedback (SQLite), next to the models."""
        return self.home / "feedback.sqlite"

    @property
    def bentoml_home(self) -> Path:
        """The kit's own BentoML store (models and Bentos), inside its home folder."""
        return self.home / "bentoml"


def parse_auth(text: str) -> tuple[str, str]:
    """Split 'USER:PASS' into its parts, refusing an empty user or password."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("credentials must look like USER:PASS (both non-empty)")
    return user, password


TELEMETRY_OFF = {  # usage statistics of the frameworks we run: off unless the user opts in
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


def disable_telemetry() -> None:
    """Set the frameworks' opt-out variables, unless the user set them already."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)


def get_settings() -> KitSettings:
    """Read the settings anew (the environment may change between calls, e.g. in tests)."""
    return KitSettings()
