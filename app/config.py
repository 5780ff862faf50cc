"""Configuration from the environment (and an optional YAML file of stores).

Everything the service needs is read once, validated, and turned into plain objects, so a
misconfiguration stops the process at start with a message that names the variable, instead
of surfacing as a 401 hours later. Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.personyze.client import DEFAULT_BASE_URL as PERSONYZE_API_URL
from app.personyze.client import check_base_url

if TYPE_CHECKING:
    from app.personyze import PersonyzeClient

BIGCOMMERCE_API_URL = "https://api.bigcommerce.com"
# The Shopify Admin API version every Shopify call pins (a stable release: YYYY-MM).
SHOPIFY_API_VERSION = "2025-10"
SHOPIFY_MIN_API_VERSION = "2024-04"
SHOPIFY_BULK_THRESHOLD = 2000
DEFAULT_STORE_ID = "default"


class ConfigError(Exception):
    """A configuration problem, phrased for the operator (never includes a secret's value)."""


def check_https_url(url: str, name: str = "PERSONYZE_BASE_URL") -> str:
    """Credentials only travel over TLS (Personyze answers plain HTTP with 401); only
    loopback hosts (the sandbox, test doubles) may be plain."""
    try:
        return check_base_url(url)
    except ValueError:
        raise ValueError(
            f"{name} must be https:// (plain http only for loopback hosts), "
            "without credentials in it"
        ) from None


def check_public_url(url: str, name: str = "PUBLIC_URL") -> str:
    """The service's public base, where stores deliver webhooks: https (Shopify and
    BigCommerce accept nothing else), plain http only for loopback hosts (tests); no trailing
    slash, so `/webhooks/<platform>` can be appended."""
    return check_https_url(url.strip(), name).rstrip("/")


def check_api_version(v: str) -> str:
    """Shopify names stable Admin API versions by release month (`2025-10`); anything else
    would only fail later, on the first call."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", v):
        raise ValueError("must be a Shopify API version like 2025-10 (YYYY-MM)")
    if v < SHOPIFY_MIN_API_VERSION:  # productsCount, variantsCount
        raise ValueError(f"must be {SHOPIFY_MIN_API_VERSION} or later")
    return v


def check_whsec(secrets: list[SecretStr]) -> list[SecretStr]:
    """`whsec_` plus the base64 key: an empty or undecodable key would verify nothing (or
    anything signed with an empty key), so it is refused rather than run."""
    for s in secrets:
        if not s.get_secret_value().startswith("whsec_"):
            raise ValueError("must start with whsec_ (the Standard Webhooks secret format)")
        try:
            key = base64.b64decode(s.get_secret_value().removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ValueError("must be whsec_ followed by base64 (value not shown)") from None
        if not key:
            raise ValueError("has an empty key after whsec_")
    return secrets


class PersonyzeAccount(BaseModel):
    """One Personyze account: its key, endpoint and the request rate all workers share."""

    api_key: SecretStr | None = None
    base_url: str = PERSONYZE_API_URL
    rate_limit: float = Field(default=5.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_https_url(v)

    def client(self) -> PersonyzeClient:
        """A client for this account (the caller closes it)."""
        from app.personyze import PersonyzeClient

        return PersonyzeClient(
            self.api_key.get_secret_value() if self.api_key else "", self.base_url
        )

    @property
    def id(self) -> str:
        """Stable, non-secret name for Redis keys: a digest of the endpoint and the key."""
        key = self.api_key.get_secret_value() if self.api_key else ""
        return hashlib.sha256(f"{self.base_url}\0{key}".encode()).hexdigest()[:16]


class MappingConfig(BaseModel):
    """Per-store changes to the default product mapping (docs/design.md, Default mapping)."""

    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    # column -> dotted path into the platform's raw product payload, e.g. {"custom_1": "tags"}
    add: dict[str, str] = Field(default_factory=dict)
    # column -> constant value
    constants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_column(self) -> MappingConfig:
        """`internal_id` is the upsert key: a mapping that wrote another value into it would
        move every product onto other rows, so it is refused at start."""
        if "internal_id" in self.add or "internal_id" in self.constants:
            raise ValueError("internal_id is the product key: it cannot be added or set")
        if "internal_id" in self.rename.values():
            raise ValueError("internal_id is the product key: no column can be renamed onto it")
        return self


class StoreConfig(BaseModel):
    """A store and the Personyze account its catalog goes to."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    personyze: PersonyzeAccount = Field(default_factory=PersonyzeAccount)
    shopify_shop_domain: str | None = None
    shopify_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    shopify_admin_token: SecretStr | None = None
    shopify_admin_api_url: str | None = None  # default https://{shop domain}
    # SHARED_STORE_SETTINGS: Settings' values (validated there), the same for every store
    shopify_api_version: str = SHOPIFY_API_VERSION
    # catalogs of at least this many products are read by a bulk operation (0: always)
    shopify_bulk_threshold: int = Field(default=SHOPIFY_BULK_THRESHOLD, ge=0)
    storefront_domain: str | None = None
    woocommerce_url: str | None = None
    woocommerce_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    # REST API keys (read access): only to refetch a parent product when a variation changes
    woocommerce_consumer_key: SecretStr | None = None
    woocommerce_consumer_secret: SecretStr | None = None
    standard_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    bigcommerce_store_hash: str | None = None
    bigcommerce_access_token: SecretStr | None = None
    bigcommerce_webhook_secrets: list[SecretStr] = Field(default_factory=list)
    bigcommerce_api_url: str = BIGCOMMERCE_API_URL
    mapping: MappingConfig = Field(default_factory=MappingConfig)

    @field_validator("standard_webhook_secrets")
    @classmethod
    def _whsec(cls, v: list[SecretStr]) -> list[SecretStr]:
        return check_whsec(v)

    @model_validator(mode="after")
    def _domains(self) -> StoreConfig:
        if self.shopify_shop_domain:
            self.shopify_shop_domain = self.shopify_shop_domain.strip().lower()
        return self

    @field_validator("woocommerce_url")
    @classmethod
    def _woo_url(cls, v: str | None) -> str | None:
        return None if not v else check_woocommerce_url(v)

    @field_validator("bigcommerce_api_url")
    @classmethod
    def _bc_url(cls, v: str) -> str:
        return check_https_url(v, "BIGCOMMERCE_API_URL")

    @field_validator("shopify_admin_api_url")
    @classmethod
    def _shopify_url(cls, v: str | None) -> str | None:
        return None if v is None else check_https_url(v, "SHOPIFY_ADMIN_API_URL")

    @property
    def shopify_api(self) -> str | None:
        """Base URL of the Admin API when backfill is configured, else None."""
        if not (
            self.shopify_admin_token and (self.shopify_admin_api_url or self.shopify_shop_domain)
        ):
            return None
        return self.shopify_admin_api_url or f"https://{self.shopify_shop_domain}"

    @property
    def bigcommerce_api(self) -> bool:
        return bool(self.bigcommerce_store_hash and self.bigcommerce_access_token)

    @property
    def woocommerce_rest_url(self) -> str:
        """The WooCommerce REST API's base (`/products`, `/webhooks` below it)."""
        return f"{self.woocommerce_url}/wp-json/wc/v3"

    @property
    def woocommerce_products_url(self) -> str:
        return f"{self.woocommerce_rest_url}/products"

    @property
    def bigcommerce_store_url(self) -> str:
        """The store's BigCommerce API base (`/v3/catalog/products`, `/v3/hooks`, `/v2/store`)."""
        return f"{self.bigcommerce_api_url}/stores/{self.bigcommerce_store_hash}"

    @property
    def bigcommerce_products_url(self) -> str:
        return f"{self.bigcommerce_store_url}/v3/catalog/products"

    @property
    def woocommerce_api(self) -> bool:
        """Whether variation changes can be synced (the parent is refetched)."""
        return bool(
            self.woocommerce_url
            and self.woocommerce_consumer_key
            and self.woocommerce_consumer_secret
        )

    @property
    def guide_domain(self) -> str | None:
        return self.storefront_domain or self.shopify_shop_domain


def normalize_source_url(url: str) -> str:
    """A WordPress site's address as one comparable string: WooCommerce sends `home_url('/')`
    (trailing slash) and users type it either way. Only the scheme and host are
    case-insensitive: a site at `/Shop` is served at `/Shop` (its REST API too), so the path
    keeps its case. Never raises (it also reads the unsigned `X-WC-Webhook-Source` header)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return text.rstrip("/")
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is not None and (parts.scheme.lower(), port) not in (("https", 443), ("http", 80)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/"), parts.query, ""))


def check_woocommerce_url(url: str) -> str:
    """The consumer key travels in a Basic header to this site: https only (plain http for
    loopback hosts, the test doubles), no credentials, query or fragment in it."""
    parts = urlsplit(url.strip())
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("WOOCOMMERCE_URL has an invalid port") from None
    if parts.query or parts.fragment:
        raise ValueError("WOOCOMMERCE_URL must be the site address without a query or fragment")
    check_https_url(url.strip(), "WOOCOMMERCE_URL")
    return normalize_source_url(url)


def _split_secrets(value: str | None) -> list[SecretStr]:
    """Several secrets (rotation, admin-created webhooks) are comma separated."""
    if not value:
        return []
    return [SecretStr(s.strip()) for s in value.split(",") if s.strip()]


class Settings(BaseSettings):
    """Process settings. Names are the environment variables of the README's Configuration table."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    redis_url: str | None = None
    broker_url: str | None = None
    # rediss:// checks the server certificate; false only for providers whose certificates
    # are self-signed (Heroku Redis). Applies to REDIS_URL and BROKER_URL alike.
    redis_tls_verify: bool = True
    key_prefix: str = "psync"
    sync_queue: str = "personyze-sync"
    stores_file: Path | None = None
    store_id: str = DEFAULT_STORE_ID

    personyze_api_key: SecretStr | None = None
    personyze_base_url: str = PERSONYZE_API_URL
    personyze_rate_limit: float = Field(default=5.0, gt=0)

    shopify_webhook_secret: SecretStr | None = None
    shopify_shop_domain: str | None = None
    shopify_admin_token: SecretStr | None = None
    shopify_admin_api_url: str | None = None
    shopify_api_version: str = SHOPIFY_API_VERSION
    shopify_bulk_threshold: int = Field(default=SHOPIFY_BULK_THRESHOLD, ge=0)
    storefront_domain: str | None = None
    woocommerce_webhook_secret: SecretStr | None = None
    woocommerce_url: str | None = None
    woocommerce_consumer_key: SecretStr | None = None
    woocommerce_consumer_secret: SecretStr | None = None
    bigcommerce_store_hash: str | None = None
    bigcommerce_access_token: SecretStr | None = None
    bigcommerce_client_secret: SecretStr | None = None
    bigcommerce_api_url: str = BIGCOMMERCE_API_URL
    standard_webhook_secret: SecretStr | None = None

    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    admin_token: SecretStr | None = None
    log_level: str = "INFO"

    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    wake_grace_seconds: float = Field(default=10.0, gt=0)
    # Longer than a task may run (TASK_TIME_LIMIT_SECONDS), so a slow call never outlives its
    # lease and meets a second worker writing the same product (checked below).
    lease_seconds: float = Field(default=120.0, gt=0)
    # Celery's hard limit per task; the soft limit (a counted, retried attempt) is 2/3 of it.
    task_time_limit_seconds: float = Field(default=90.0, gt=0)
    max_attempts: int = Field(default=10, gt=0)
    max_retry_age_seconds: float = Field(default=24 * 3600, gt=0)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    auth_pause_seconds: float = Field(default=300.0, gt=0)
    reconcile_interval_seconds: float = Field(default=6 * 3600, ge=0)
    product_cooldown_seconds: float = Field(default=1.0, ge=0)
    sweep_batch: int = Field(default=200, gt=0)
    # Most wake-up messages the dispatcher lets wait in the broker's queue (issue 9): enough to
    # keep every worker process busy between two of its looks (every 0.1 s when full).
    wake_queue_max: int = Field(default=50, gt=0)
    # A resync ingests at most this many products ahead of the workers: each pending product
    # holds its document in Redis (docs/design.md, Memory), so a backfill of a large catalog
    # must not hold them all at once (0: no bound).
    resync_max_backlog: int = Field(default=5000, ge=0)
    resync_stall_seconds: float = Field(default=600.0, gt=0)
    wake_from_web: bool = False
    # Store webhook subscriptions (`personyze-sync connect`, and the scheduler's repair)
    public_url: str | None = None
    subscription_check_seconds: float = Field(default=3600.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        return None if not v else check_public_url(v)

    @field_validator("personyze_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_https_url(v)

    @field_validator("shopify_api_version")
    @classmethod
    def _shopify_version(cls, v: str) -> str:
        return check_api_version(v)

    @field_validator("admin_token")
    @classmethod
    def _admin(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and 0 < len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (or unset: admin off)")
        return v

    @field_validator("standard_webhook_secret")
    @classmethod
    def _whsec(cls, v: SecretStr | None) -> SecretStr | None:
        check_whsec(_split_secrets(v.get_secret_value() if v else None))
        return v

    @model_validator(mode="after")
    def _lease_outlives_task(self) -> Settings:
        if self.lease_seconds <= self.task_time_limit_seconds:
            raise ValueError(
                "LEASE_SECONDS must be longer than TASK_TIME_LIMIT_SECONDS: a task "
                "still running after its lease would write beside another worker"
            )
        return self

    @property
    def task_soft_time_limit_seconds(self) -> float:
        return self.task_time_limit_seconds * 2 / 3

    @cached_property
    def stores(self) -> dict[str, StoreConfig]:
        """The stores this process serves: from STORES_FILE, else one from the environment."""
        if self.stores_file:
            shared = {name: getattr(self, name) for name in SHARED_STORE_SETTINGS}
            return load_stores_file(self.stores_file, shared)
        store = StoreConfig(
            id=self.store_id,
            personyze=PersonyzeAccount(
                api_key=self.personyze_api_key,
                base_url=self.personyze_base_url,
                rate_limit=self.personyze_rate_limit,
            ),
            shopify_shop_domain=self.shopify_shop_domain,
            shopify_webhook_secrets=_split_secrets(_raw(self.shopify_webhook_secret)),
            shopify_admin_token=self.shopify_admin_token,
            shopify_admin_api_url=self.shopify_admin_api_url,
            shopify_api_version=self.shopify_api_version,
            shopify_bulk_threshold=self.shopify_bulk_threshold,
            storefront_domain=self.storefront_domain,
            woocommerce_url=self.woocommerce_url,
            woocommerce_webhook_secrets=_split_secrets(_raw(self.woocommerce_webhook_secret)),
            woocommerce_consumer_key=self.woocommerce_consumer_key,
            woocommerce_consumer_secret=self.woocommerce_consumer_secret,
            standard_webhook_secrets=_split_secrets(_raw(self.standard_webhook_secret)),
            bigcommerce_store_hash=self.bigcommerce_store_hash,
            bigcommerce_access_token=self.bigcommerce_access_token,
            bigcommerce_webhook_secrets=_split_secrets(_raw(self.bigcommerce_client_secret)),
            bigcommerce_api_url=self.bigcommerce_api_url,
        )
        return {store.id: store}

    def problems(self, *, need_api_key: bool) -> list[str]:
        """What stops this configuration from syncing, phrased for the operator."""
        out: list[str] = []
        for store in self.stores.values():
            where = f"store {store.id!r}" if self.stores_file else "environment"
            if need_api_key and not store.personyze.api_key:
                out.append(f"{where}: PERSONYZE_API_KEY is not set")
            elif store.personyze.api_key and len(store.personyze.api_key.get_secret_value()) != 40:
                out.append(f"{where}: PERSONYZE_API_KEY must be 40 characters (value not shown)")
            if not (
                store.shopify_webhook_secrets
                or store.woocommerce_webhook_secrets
                or store.standard_webhook_secrets
                or store.bigcommerce_webhook_secrets
            ):
                out.append(
                    f"{where}: no webhook secret: set SHOPIFY_WEBHOOK_SECRET, "
                    "WOOCOMMERCE_WEBHOOK_SECRET, STANDARD_WEBHOOK_SECRET or "
                    "BIGCOMMERCE_CLIENT_SECRET"
                )
            if store.bigcommerce_webhook_secrets and not store.bigcommerce_api:
                out.append(
                    f"{where}: BigCommerce webhooks carry no product state: set "
                    "BIGCOMMERCE_STORE_HASH and BIGCOMMERCE_ACCESS_TOKEN"
                )
        return out


def _raw(s: SecretStr | None) -> str | None:
    return s.get_secret_value() if s else None


# Settings with one value for every store (the environment's): a store entry may not set them.
SHARED_STORE_SETTINGS = ("shopify_api_version", "shopify_bulk_threshold")


def load_stores_file(path: Path, shared: dict[str, Any] | None = None) -> dict[str, StoreConfig]:
    """Many stores, one Personyze account each. Values may be `${ENV_NAME}` references so the
    file itself can be committed without secrets; `shared` are the SHARED_STORE_SETTINGS."""
    try:
        raw: Any = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"STORES_FILE {path}: cannot read: {type(e).__name__}") from None
    items = raw.get("stores") if isinstance(raw, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"STORES_FILE {path}: expected a top-level 'stores:' list")
    stores: dict[str, StoreConfig] = {}
    for i, item in enumerate(items):
        pinned = [name for name in SHARED_STORE_SETTINGS if isinstance(item, dict) and name in item]
        if pinned:
            raise ConfigError(
                f"STORES_FILE {path}: stores[{i}]: {pinned[0]} is one value for every store; "
                f"set {pinned[0].upper()} in the environment"
            )
        data = _expand_env(item)
        try:
            store = StoreConfig.model_validate(
                data | (shared or {}) if isinstance(data, dict) else data
            )
        except ValidationError as e:
            raise ConfigError(f"STORES_FILE {path}: stores[{i}]: {_describe(e)}") from None
        if store.id in stores:
            raise ConfigError(f"STORES_FILE {path}: duplicate store id {store.id!r}")
        stores[store.id] = store
    return stores


def _expand_env(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        name = value[2:-1]
        if name not in os.environ:
            raise ConfigError(f"STORES_FILE refers to ${{{name}}} which is not set")
        return os.environ[name]
    if isinstance(value, dict):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


def _describe(e: ValidationError) -> str:
    """Name the field and the problem, never the input (it may be a secret)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']).upper() or 'value'}: {err['msg']}"
        for err in e.errors(include_input=False, include_url=False)
    )


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ConfigError naming the variable on a bad value."""
    try:
        settings = Settings(**overrides)
        _ = settings.stores
    except ValidationError as e:
        raise ConfigError(f"invalid configuration: {_describe(e)}") from None
    return settings
