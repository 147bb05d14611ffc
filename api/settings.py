"""The one settings class (env prefix ``RCMHUB_``), built at start-up and passed down."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, model_validator
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
    destinations: Path | None = None  # EMR destinations YAML (deploy/destinations.example.yaml); unset: none
    write_off_threshold: Decimal = Field(default=Decimal("500.00"), ge=0)  # above: a supervisor approves
    # Patient notices and dunning (issue 7; connectors/notify). Empty SMTP host / SMS base URL: channel off.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = ""
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_ca_file: str = ""  # a private CA for the SMTP server's certificate (STARTTLS); empty: system trust
    sms_base_url: str = ""  # https://api.twilio.com, or any provider compatible with its Messages API
    sms_account_sid: str = ""
    sms_auth_token: SecretStr = SecretStr("")
    sms_from: str = ""  # E.164 number or a Messaging Service SID (MG...)
    public_url: str = ""  # where patients reach /pay/{token}; default http://{api_host}:{api_port}
    pay_link_secret: SecretStr = SecretStr("")  # empty: a key made once in data_dir/secrets (embedded mode)
    pay_link_ttl_days: int = Field(default=45, ge=1, le=365)
    practice_name: str = "Your care team"
    practice_phone: str = ""
    dunning_schedule: str = "0:statement,30:reminder,60:reminder,90:final_notice,120:collections"
    dunning_min_balance: Decimal = Field(default=Decimal("0.01"), gt=0)
    dunning_interval_seconds: int = Field(default=3600, ge=0)  # serve's scheduler; 0 turns it off
    # Patient payments through the gateway (issue 7; connectors/payments). Empty API key: online payments off.
    stripe_api_key: SecretStr = SecretStr("")
    stripe_api_base: str = ""  # empty: Stripe's own API; tests point it at a local fake
    stripe_webhook_secret: SecretStr = SecretStr("")
    stripe_webhook_tolerance: int = Field(default=300, ge=1)  # seconds a signed webhook stays acceptable
    payments_retry_days: tuple[int, ...] = (3, 7)  # declined installment: retry after these days, then default
    payments_interval_seconds: int = Field(default=3600, ge=0)  # autopay inside serve; 0 turns it off

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
