"""The one settings class (env prefix ``RCMHUB_``), built at start-up and passed down."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCMHUB_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("rcmhub", appauthor=False)))
    database_url: str = ""  # empty: SQLite file ``rcmhub.db`` in data_dir (embedded mode)
    amqp_url: str = ""  # empty: the in-process bus (embedded mode)
    amqp_prefix: str = "rcmhub"  # exchange/queue name prefix (connectors/rabbitmq/topology.py)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    mllp_host: str = "127.0.0.1"
    mllp_port: int = Field(default=2575, ge=0, le=65535)
    drop_dir: Path | None = None  # default: data_dir / "drop"
    log_level: str = "WARNING"

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'rcmhub.db'}"
        if self.drop_dir is None:
            self.drop_dir = self.data_dir / "drop"
        return self

    @property
    def embedded(self) -> bool:
        return not self.amqp_url
