"""Every secret, id and URL the tests share, in one place.

The test settings (conftest `make_settings`), the signing `webhooks` fixture (tests/webhooks.py),
the fake store APIs and the tests themselves all read them from here, so a test asserting that
a secret never leaks names the very value the app was configured with. Helper modules import
this module, never `conftest`: conftest is pytest's fixture module, and a helper importing it
would pull every fixture (and its imports) into whatever uses the helper.
"""

from __future__ import annotations

from datetime import UTC, datetime

# The tests' epoch: a product built by tests/support.py is dated `at` seconds after it, and a
# Shopify delivery is triggered at it unless the test says otherwise.
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

# -- what the test settings configure (conftest `make_settings`) -----------------------------

SHOP = "test-shop.myshopify.com"
SHOPIFY_SECRET = "shpss_test_secret_one"
SHOPIFY_SECRET_2 = "shpss_test_secret_two"  # a rotated secret: both verify
WOO_URL = "https://woo.example.com"
WOO_SECRET = "woo-test-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SANDBOX_KEY = "TESTKEY" + "0" * 33  # the Personyze sandbox's API key (40 characters)
SENTRY_TEST_RELEASE = "0123abc-test-release"

# -- the store APIs' fakes (tests/fake_shopify.py, tests/fake_stores.py) ---------------------

SHOPIFY_TOKEN = "shpat_test_token"  # Shopify Admin API access token
WOO_CONSUMER_KEY, WOO_CONSUMER_SECRET = "ck_test", "cs_test"  # WooCommerce REST API keys
BC_HASH, BC_TOKEN = "abc123", "bc-token-test"  # BigCommerce store hash and API token
BC_CLIENT_SECRET = "bc-client-secret"  # the BigCommerce app's client secret: signs its webhooks

# -- the webhook-subscription APIs' fakes (tests/fake_store_hooks.py) ------------------------

HOOKS_SHOPIFY_TOKEN = "shpat_hooks_test_token"
HOOKS_WOO_KEY, HOOKS_WOO_SECRET = "ck_hooks_rw", "cs_hooks_rw"  # a read/write key
HOOKS_WOO_RO_KEY, HOOKS_WOO_RO_SECRET = "ck_hooks_ro", "cs_hooks_ro"  # a read-only key
HOOKS_BC_HASH, HOOKS_BC_TOKEN = "hooks1", "bc-hooks-token"
