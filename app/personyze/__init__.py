"""Personyze REST client: typed errors, a pure path builder and the HTTP client."""

from .client import DEFAULT_BASE_URL, PersonyzeClient, check_base_url
from .errors import (
    PersonyzeAuthError,
    PersonyzeBadRequest,
    PersonyzeError,
    PersonyzeServerError,
    PersonyzeTransportError,
    PersonyzeUnavailable,
    parse_retry_after,
)
from .paths import (
    MAX_WINDOW,
    AllOf,
    AnyOf,
    Condition,
    Where,
    WhereLike,
    all_of,
    and_where,
    any_of,
    build_path,
    cond,
    encode_value,
    eq,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_WINDOW",
    "AllOf",
    "AnyOf",
    "Condition",
    "PersonyzeAuthError",
    "PersonyzeBadRequest",
    "PersonyzeClient",
    "PersonyzeError",
    "PersonyzeServerError",
    "PersonyzeTransportError",
    "PersonyzeUnavailable",
    "Where",
    "WhereLike",
    "all_of",
    "and_where",
    "any_of",
    "build_path",
    "check_base_url",
    "cond",
    "encode_value",
    "eq",
    "parse_retry_after",
]
