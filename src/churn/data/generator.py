"""Synthetic e-commerce customers with churn drawn from a known probability model.

The generator is vectorised and works in fixed-size blocks, each with its own child
seed, so the output depends only on the arguments (never on memory or chunking) and a
million rows take seconds. Every row's true churn probability is available to callers
(``with_truth``) so that the best achievable ROC-AUC of a data set can be computed; it
is never written into the raw export.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from churn.data import schema
from churn.data.scenarios import Scenario, get_scenario
from churn.errors import ChurnError

#: Rows per block; part of the output definition (changing it changes the data).
BLOCK_ROWS = 65_536
_CALIBRATION_ROWS = 200_000
_CALIBRATION_SEED = 20_240_101

_BASE_CHANNEL_MIX = {
    "organic_search": 0.28,
    "paid_search": 0.18,
    "social": 0.15,
    "email": 0.08,
    "referral": 0.10,
    "affiliate": 0.08,
    "direct": 0.13,
}
_CHANNEL_ENGAGEMENT = {
    "organic_search": 0.10,
    "paid_search": -0.10,
    "social": -0.35,
    "email": 0.10,
    "referral": 0.30,
    "affiliate": -0.30,
    "direct": 0.20,
}
_CHANNEL_CHURN = {"social": 0.30, "affiliate": 0.25, "paid_search": 0.05, "referral": -0.25, "direct": -0.10}
_COUNTRY_P = (0.22, 0.18, 0.15, 0.08, 0.10, 0.10, 0.07, 0.05, 0.05)
_COUNTRY_AOV = (0.05, 0.08, 0.0, 0.02, -0.12, -0.08, -0.25, 0.10, 0.15)
_TIER_CHURN = (0.30, 0.0, -0.35, -0.70)
_TIER_AOV = (0.0, 0.12, 0.28, 0.50)
#: Cut points of the latent tier score: 55% basic, 25% silver, 14% gold, 6% platinum at baseline.
_TIER_CUTS = (0.20, 1.07, 1.94)

_MISSING_RATES = {
    "age": 0.04,
    "gender": 0.03,
    "pages_per_session": 0.02,  # on top of the customers with no session at all
    "email_open_rate": 0.06,
    "cart_abandonment_rate": 0.05,
    "satisfaction_score": 0.08,
}


@dataclass(frozen=True)
class GeneratedCustomers:
    """A generated batch: the raw export and, aligned with it, each row's true churn probability."""

    frame: pd.DataFrame
    true_probability: np.ndarray


def parse_date(value: str | dt.date | None) -> dt.date:
    """Parse ``YYYY-MM-DD`` (or pass a date through); ``None`` means today (UTC)."""
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ChurnError(f"date {value!r} is not a valid YYYY-MM-DD date") from None


def generate_customers(
    rows: int,
    date: str | dt.date | None = None,
    *,
    seed: int = 42,
    scenario: str = "none",
    strength: float = 1.0,
    churn_rate: float = 0.25,
    progress: Callable[[int], None] | None = None,
) -> GeneratedCustomers:
    """Generate ``rows`` customers snapshotted on ``date``.

    Args:
        rows: Number of customers.
        date: Snapshot date (``YYYY-MM-DD``); today when omitted.
        seed: Random seed; same arguments give the same rows.
        scenario: Drift scenario name (see :mod:`churn.data.scenarios`).
        strength: Scales the scenario's shifts (0 = no drift, 1 = as stated).
        churn_rate: Churn rate of the undrifted population; drift moves it from there.
        progress: Called with the number of rows finished after each block.

    Returns:
        The raw frame (columns in :data:`churn.data.schema.RAW_COLUMNS` order) and the
        true churn probability of each row.

    """
    blocks = list(
        iter_customer_blocks(
            rows, date, seed=seed, scenario=scenario, strength=strength, churn_rate=churn_rate, progress=progress
        )
    )
    if not blocks:
        return GeneratedCustomers(_empty_frame(), np.empty(0))
    frame = pd.concat([b.frame for b in blocks], ignore_index=True)
    return GeneratedCustomers(frame, np.concatenate([b.true_probability for b in blocks]))


def iter_customer_blocks(
    rows: int,
    date: str | dt.date | None = None,
    *,
    seed: int = 42,
    scenario: str = "none",
    strength: float = 1.0,
    churn_rate: float = 0.25,
    progress: Callable[[int], None] | None = None,
) -> Iterator[GeneratedCustomers]:
    """Yield the rows of :func:`generate_customers` block by block (bounded memory).

    Arguments are checked at once, before the first block is asked for.
    """
    if rows < 0:
        raise ChurnError(f"rows must be >= 0, got {rows}")
    if not 0.01 <= churn_rate <= 0.9:
        raise ChurnError(f"churn_rate must be between 0.01 and 0.9, got {churn_rate}")
    if not 0.0 <= strength <= 5.0:
        raise ChurnError(f"strength must be between 0 and 5, got {strength}")
    snapshot = parse_date(date)
    drift = get_scenario(scenario)
    concept = round(min(1.0, strength * drift.concept), 6)
    return _blocks(rows, snapshot, seed, drift, strength, _intercept(round(churn_rate, 6), concept), progress)


def _blocks(
    rows: int,
    snapshot: dt.date,
    seed: int,
    drift: Scenario,
    strength: float,
    intercept: float,
    progress: Callable[[int], None] | None,
) -> Iterator[GeneratedCustomers]:
    root = np.random.SeedSequence([seed, snapshot.toordinal()])
    done = 0
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        n = min(BLOCK_ROWS, rows - start)
        rng = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(block,)))
        values = _draw_attributes(rng, n, drift, strength)
        probability = _sigmoid(intercept + _score(values, round(min(1.0, strength * drift.concept), 6)))
        churned = (rng.random(n) < probability).astype(np.int8)
        _mask_missing(rng, values)
        yield GeneratedCustomers(_to_frame(values, churned, snapshot, start), probability)
        done += n
        if progress is not None:
            progress(done)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _blend(base: float, target: float, strength: float) -> float:
    return base + strength * (target - base)


def _draw_attributes(rng: np.random.Generator, n: int, drift: Scenario, strength: float) -> dict[str, np.ndarray]:
    """Draw the true (unmasked) attributes of ``n`` customers; categories as integer codes."""
    channels = tuple(_BASE_CHANNEL_MIX)
    mix = np.array(list(_BASE_CHANNEL_MIX.values()))
    if drift.channel_mix is not None:
        target = np.array([drift.channel_mix[c] for c in channels])
        mix = np.clip(mix + strength * (target - mix), 0, None)
        mix = mix / mix.sum()
    channel = rng.choice(len(channels), size=n, p=mix)
    country = rng.choice(len(schema.COUNTRIES), size=n, p=_COUNTRY_P)
    gender = rng.choice(len(schema.GENDERS), size=n, p=(0.52, 0.45, 0.03))
    age = np.clip(18 + rng.gamma(4.0, 6.5, n), 18, 95).astype(np.int64)

    # One latent engagement factor drives behaviour, so columns correlate as they do in real shops.
    engagement = rng.normal(0.0, 1.0, n) + np.array([_CHANNEL_ENGAGEMENT[c] for c in channels])[channel]
    tenure = np.minimum(20 + rng.gamma(1.3, 420.0, n), 3650).astype(np.int64)

    mobile_p = _sigmoid(1.4 - 0.05 * (age - 35))
    u = rng.random(n)
    device = np.where(u < mobile_p, 0, np.where(u < mobile_p + (1 - mobile_p) * 0.8, 1, 2))

    tier_latent = 0.8 * engagement + 0.5 * np.log(tenure / 365.0) + rng.normal(0, 0.8, n)
    tier = np.searchsorted(_TIER_CUTS, tier_latent)

    young = age < 30
    pay_p = np.where(young[:, None], [0.25, 0.30, 0.15, 0.22, 0.04, 0.04], [0.38, 0.27, 0.18, 0.07, 0.06, 0.04])
    payment = (rng.random(n)[:, None] > np.cumsum(pay_p, axis=1)).sum(axis=1)

    order_rate = np.exp(0.6 + 0.45 * engagement + 0.55 * np.log1p(tenure / 180.0) + 0.15 * tier)
    orders = 1 + rng.poisson(order_rate * rng.gamma(2.0, 0.5, n))
    order_keep = _blend(1.0, drift.order_factor, strength)
    if order_keep != 1.0:  # draw only when drifting, so strength 0 reproduces "none" exactly
        orders = 1 + rng.binomial(orders - 1, order_keep)

    log_aov = 3.9 + np.array(_TIER_AOV)[tier] + np.array(_COUNTRY_AOV)[country] + rng.normal(0, 0.45, n)
    aov = np.exp(log_aov) * _blend(1.0, drift.aov_factor, strength)
    spend = np.round(orders * aov, 2)
    aov = np.round(spend / orders, 2)

    mean_gap = tenure / orders
    recency = rng.exponential(mean_gap * np.exp(-0.35 * engagement))
    recency = recency + strength * drift.recency_shift_days
    recency = np.minimum(recency, tenure).astype(np.int64)

    return_p = _sigmoid(-2.4 + 0.25 * (device == 0) + rng.normal(0, 0.5, n))
    returns = rng.binomial(orders, return_p)

    channel_discount = np.isin(channel, [channels.index("affiliate"), channels.index("email")])
    discount_p = _sigmoid(-1.4 + 0.6 * channel_discount - 0.2 * tier + rng.normal(0, 0.6, n))
    discount = rng.binomial(orders, discount_p) / orders
    discount = np.clip(discount + strength * drift.discount_shift, 0, 1)

    sessions = rng.poisson(np.exp(2.0 + 0.6 * engagement - 0.004 * np.minimum(recency, 365)))
    session_keep = _blend(1.0, drift.session_factor, strength)
    if session_keep != 1.0:
        sessions = rng.binomial(sessions, session_keep)
    pages = 1.0 + rng.gamma(2.0, 1.8 * np.exp(0.15 * engagement))

    email_open = rng.beta(2.0, 2.0 * np.exp(-0.5 * engagement) * 2.0)
    email_open = np.clip(email_open + strength * drift.email_open_shift, 0, 1)

    uses_app = rng.random(n) < np.where(device == 0, 0.65, 0.20)
    app_minutes = np.where(uses_app, rng.gamma(1.5, 40.0 * np.exp(0.5 * engagement)), 0.0)
    app_minutes = app_minutes * _blend(1.0, drift.app_usage_factor, strength)

    cart_mean = _sigmoid(0.1 - 0.5 * engagement)
    cart_abandon = rng.beta(4.0 * cart_mean + 0.5, 4.0 * (1 - cart_mean) + 0.5)
    cart_abandon = np.clip(cart_abandon + strength * drift.cart_abandonment_shift, 0, 1)

    tickets = rng.poisson(0.35 * np.exp(0.9 * returns / orders + 0.1 * np.log1p(orders)))
    if strength * drift.extra_tickets:
        tickets = tickets + rng.poisson(strength * drift.extra_tickets, n)

    satisfaction = 3.9 - 0.5 * tickets + 0.3 * engagement + rng.normal(0, 0.8, n)
    satisfaction = np.clip(np.round(satisfaction + strength * drift.satisfaction_shift), 1, 5).astype(np.int64)

    return {
        "tenure_days": tenure,
        "age": age.astype(np.float64),
        "country": country,
        "gender": gender,
        "membership_tier": tier,
        "acquisition_channel": channel,
        "preferred_device": device,
        "payment_method": payment,
        "total_orders": orders,
        "total_spend": spend,
        "avg_order_value": aov,
        "days_since_last_purchase": recency,
        "total_returns": returns,
        "discount_usage_rate": np.round(discount, 4),
        "sessions_last_30d": sessions,
        "pages_per_session": np.where(sessions > 0, np.round(pages, 2), np.nan),
        "email_open_rate": np.round(email_open, 4),
        "app_usage_minutes_30d": np.round(app_minutes, 1),
        "cart_abandonment_rate": np.round(cart_abandon, 4),
        "support_tickets_90d": tickets,
        "satisfaction_score": satisfaction.astype(np.float64),
    }


def _churn_score(v: dict[str, np.ndarray]) -> np.ndarray:
    """The churn log-odds without intercept: the ground-truth model of the generator.

    Main effects follow intuition (recency, engagement, service quality, tier); the
    interactions are the ones a linear model cannot see on its own: unhappy customers
    who also open tickets, discount hunters in the basic tier, mobile users without the
    app, and a U-shape in age.
    """
    tickets = v["support_tickets_90d"]
    satisfaction = v["satisfaction_score"]
    tier = v["membership_tier"]
    channel_churn = np.array([_CHANNEL_CHURN.get(c, 0.0) for c in _BASE_CHANNEL_MIX])
    score = (
        _behaviour_score(v)
        + 1.20 * (v["cart_abandonment_rate"] - 0.5)
        + 0.30 * tickets
        - 0.40 * (satisfaction - 3.5)
        + 0.70 * ((tickets >= 2) & (satisfaction <= 2))
        + 1.00 * v["discount_usage_rate"] * (tier == 0)
        + np.array(_TIER_CHURN)[tier]
        + channel_churn[v["acquisition_channel"]]
        + 0.50 * (v["tenure_days"] < 90)
        + 1.00 * v["total_returns"] / v["total_orders"]
        + 0.25 * ((v["preferred_device"] == 0) & (v["app_usage_minutes_30d"] == 0))
        + 0.15 * ((v["age"] - 40.0) / 15.0) ** 2
    )
    return np.asarray(score)


def _concept_score(v: dict[str, np.ndarray]) -> np.ndarray:
    """The churn log-odds after the concept drift: engagement now drives customers away.

    The behaviour terms of :func:`_churn_score` change sign, at half their strength (recent buyers, frequent
    visitors, app users and email readers are the ones a competitor wins over); service
    quality, tier and the other terms keep their effect.
    """
    return np.asarray(_churn_score(v) - 1.5 * _behaviour_score(v))


def _behaviour_score(v: dict[str, np.ndarray]) -> np.ndarray:
    """The purchase and engagement terms of the churn log-odds (what the concept drift turns around)."""
    return np.asarray(
        0.85 * np.log1p(v["days_since_last_purchase"] / 30.0)
        - 0.30 * np.log1p(v["total_orders"])
        - 0.40 * np.log1p(v["sessions_last_30d"])
        - 1.10 * (v["email_open_rate"] - 0.45)
        - 0.20 * np.log1p(v["app_usage_minutes_30d"] / 30.0)
    )


def _score(v: dict[str, np.ndarray], concept: float) -> np.ndarray:
    """The churn log-odds without intercept, blended towards the drifted concept by ``concept``."""
    if concept == 0.0:
        return _churn_score(v)
    return np.asarray((1.0 - concept) * _churn_score(v) + concept * _concept_score(v))


@lru_cache(maxsize=16)
def _intercept(churn_rate: float, concept: float = 0.0) -> float:
    """Intercept that gives ``churn_rate`` on the undrifted population (fixed calibration sample)."""
    rng = np.random.default_rng(_CALIBRATION_SEED)
    score = _score(_draw_attributes(rng, _CALIBRATION_ROWS, get_scenario("none"), 0.0), concept)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(mid + score).mean() < churn_rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _mask_missing(rng: np.random.Generator, v: dict[str, np.ndarray]) -> None:
    """Blank out values where real exports have gaps (after churn was drawn from the true values)."""
    for name, rate in _MISSING_RATES.items():
        hit = rng.random(len(v[name])) < rate
        if v[name].dtype.kind == "f":
            v[name] = np.where(hit, np.nan, v[name])
        else:  # category codes: -1 marks missing
            v[name] = np.where(hit, -1, v[name])


def _categorical(codes: np.ndarray, categories: tuple[str, ...]) -> Any:
    return pd.Categorical.from_codes(codes.astype(np.int64), dtype=pd.CategoricalDtype(list(categories)))


def _to_frame(v: dict[str, np.ndarray], churned: np.ndarray, snapshot: dt.date, start: int) -> pd.DataFrame:
    n = len(churned)
    day = np.datetime64(snapshot, "D")
    prefix = f"C{snapshot:%Y%m%d}-"
    ids = np.strings.add(prefix, np.strings.zfill(np.arange(start, start + n).astype("U"), 7))
    frame = pd.DataFrame(
        {
            "customer_id": ids.astype(object),
            "signup_date": (day - v["tenure_days"].astype("timedelta64[D]")).astype("datetime64[s]"),
            "snapshot_date": np.full(n, day).astype("datetime64[s]"),
            "age": pd.array(v["age"], dtype="Int64"),
            "country": _categorical(v["country"], schema.COUNTRIES),
            "gender": _categorical(v["gender"], schema.GENDERS),
            "membership_tier": _categorical(v["membership_tier"], schema.MEMBERSHIP_TIERS),
            "acquisition_channel": _categorical(v["acquisition_channel"], schema.ACQUISITION_CHANNELS),
            "preferred_device": _categorical(v["preferred_device"], schema.DEVICES),
            "payment_method": _categorical(v["payment_method"], schema.PAYMENT_METHODS),
            "total_orders": v["total_orders"],
            "total_spend": v["total_spend"],
            "avg_order_value": v["avg_order_value"],
            "days_since_last_purchase": v["days_since_last_purchase"],
            "total_returns": v["total_returns"],
            "discount_usage_rate": v["discount_usage_rate"],
            "sessions_last_30d": v["sessions_last_30d"],
            "pages_per_session": v["pages_per_session"],
            "email_open_rate": v["email_open_rate"],
            "app_usage_minutes_30d": v["app_usage_minutes_30d"],
            "cart_abandonment_rate": v["cart_abandonment_rate"],
            "support_tickets_90d": v["support_tickets_90d"],
            "satisfaction_score": pd.array(v["satisfaction_score"], dtype="Int64"),
            "churned": churned,
        },
        index=pd.RangeIndex(start, start + n),
    )
    return frame[list(schema.RAW_COLUMN_NAMES)]


def _empty_frame() -> pd.DataFrame:
    return _to_frame(
        {k: np.empty(0, dtype=np.int64) for k in ("tenure_days", *_CATEGORY_CODE_COLUMNS)}
        | {k: np.empty(0) for k in _FLOAT_COLUMNS}
        | {k: np.empty(0, dtype=np.int64) for k in _INT_COLUMNS},
        np.empty(0, dtype=np.int8),
        dt.date(2000, 1, 1),
        0,
    )


_CATEGORY_CODE_COLUMNS = schema.CATEGORY_COLUMNS
_FLOAT_COLUMNS = ("age", "satisfaction_score", *(c.name for c in schema.RAW_COLUMNS if c.kind is schema.Kind.FLOAT))
_INT_COLUMNS = tuple(
    c.name for c in schema.RAW_COLUMNS if c.kind is schema.Kind.INT and c.name not in ("age", "satisfaction_score")
)
