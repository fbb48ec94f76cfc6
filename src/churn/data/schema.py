"""The raw customer export: one declaration of every column, shared by all stages.

The generator writes these columns in this order, validation builds its pandera schema
from them, feature engineering picks its inputs from them and the serving layer (a later
issue) advertises them as the model's inputs. Changing a column here changes it
everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """How a raw column is stored and checked."""

    ID = "id"
    DATE = "date"
    INT = "int"
    FLOAT = "float"
    CATEGORY = "category"
    LABEL = "label"


@dataclass(frozen=True)
class RawColumn:
    """One column of the raw export.

    Attributes:
        name: Column name in the file.
        kind: Storage kind (see :class:`Kind`).
        description: What the column means, for docs and model metadata.
        min: Smallest allowed value (numbers only).
        max: Largest allowed value (numbers only).
        categories: Allowed values (categories only).
        max_null_rate: Largest fraction of missing values a valid file may have.

    """

    name: str
    kind: Kind
    description: str
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = field(default=())
    max_null_rate: float = 0.0

    @property
    def nullable(self) -> bool:
        return self.max_null_rate > 0


COUNTRIES = ("DE", "GB", "FR", "NL", "ES", "IT", "PL", "SE", "US")
GENDERS = ("female", "male", "other")
MEMBERSHIP_TIERS = ("basic", "silver", "gold", "platinum")
ACQUISITION_CHANNELS = (
    "organic_search",
    "paid_search",
    "social",
    "email",
    "referral",
    "affiliate",
    "direct",
)
DEVICES = ("mobile", "desktop", "tablet")
PAYMENT_METHODS = (
    "credit_card",
    "paypal",
    "debit_card",
    "buy_now_pay_later",
    "bank_transfer",
    "gift_card",
)

RAW_COLUMNS: tuple[RawColumn, ...] = (
    RawColumn("customer_id", Kind.ID, "Unique customer identifier."),
    RawColumn("signup_date", Kind.DATE, "Day the account was created."),
    RawColumn("snapshot_date", Kind.DATE, "Day the row was exported; all counts end here."),
    RawColumn("age", Kind.INT, "Age in years.", 18, 100, max_null_rate=0.10),
    RawColumn("country", Kind.CATEGORY, "Shipping country (ISO 3166-1 alpha-2).", categories=COUNTRIES),
    RawColumn("gender", Kind.CATEGORY, "Self-declared gender.", categories=GENDERS, max_null_rate=0.10),
    RawColumn("membership_tier", Kind.CATEGORY, "Loyalty programme tier.", categories=MEMBERSHIP_TIERS),
    RawColumn(
        "acquisition_channel", Kind.CATEGORY, "Marketing channel of the first visit.", categories=ACQUISITION_CHANNELS
    ),
    RawColumn("preferred_device", Kind.CATEGORY, "Device of most sessions.", categories=DEVICES),
    RawColumn("payment_method", Kind.CATEGORY, "Most used payment method.", categories=PAYMENT_METHODS),
    RawColumn("total_orders", Kind.INT, "Orders since signup.", 1, 10_000),
    RawColumn("total_spend", Kind.FLOAT, "Gross spend since signup, EUR.", 0, 10_000_000),
    RawColumn("avg_order_value", Kind.FLOAT, "total_spend / total_orders, EUR.", 0, 1_000_000),
    RawColumn("days_since_last_purchase", Kind.INT, "Days between the last order and the snapshot.", 0, 36_500),
    RawColumn("total_returns", Kind.INT, "Orders returned since signup.", 0, 10_000),
    RawColumn("discount_usage_rate", Kind.FLOAT, "Share of orders placed with a discount code.", 0, 1),
    RawColumn("sessions_last_30d", Kind.INT, "Web and app sessions in the last 30 days.", 0, 10_000),
    # Empty for every customer with no session in 30 days, so its null rate follows inactivity
    # (about 19% on an engagement_decline day).
    RawColumn(
        "pages_per_session", Kind.FLOAT, "Mean pages viewed per session, last 30 days.", 1, 1_000, max_null_rate=0.30
    ),
    RawColumn("email_open_rate", Kind.FLOAT, "Share of marketing emails opened.", 0, 1, max_null_rate=0.15),
    RawColumn("app_usage_minutes_30d", Kind.FLOAT, "Minutes in the mobile app, last 30 days.", 0, 43_200),
    RawColumn("cart_abandonment_rate", Kind.FLOAT, "Share of carts left without checkout.", 0, 1, max_null_rate=0.15),
    RawColumn("support_tickets_90d", Kind.INT, "Support tickets opened in the last 90 days.", 0, 1_000),
    RawColumn(
        "satisfaction_score", Kind.INT, "Last CSAT survey answer, 1 (bad) to 5 (good).", 1, 5, max_null_rate=0.20
    ),
    RawColumn("churned", Kind.LABEL, "1 when the customer placed no order in the 90 days after the snapshot."),
)

COLUMNS_BY_NAME: dict[str, RawColumn] = {c.name: c for c in RAW_COLUMNS}
RAW_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS)
LABEL = "churned"
ID = "customer_id"
#: Columns a caller sends to score a customer: everything but the label.
INPUT_COLUMNS: tuple[RawColumn, ...] = tuple(c for c in RAW_COLUMNS if c.kind is not Kind.LABEL)
CATEGORY_COLUMNS: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS if c.kind is Kind.CATEGORY)
