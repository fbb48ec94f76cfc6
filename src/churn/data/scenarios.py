"""Named drift scenarios: reproducible ways in which tomorrow's customers differ.

Each input-drift scenario (:data:`SCENARIOS`) states which raw columns it moves and by
how much (at ``strength=1``), so that the monitoring tests can check that drift detection
flags exactly those columns. Shifts are applied to the customers' attributes *before*
churn is drawn, so the churn rate moves as the probability model says it should.

A concept-drift scenario (:data:`CONCEPT_SCENARIOS`) moves no column at all: the
customers look exactly as before, but the relationship between their behaviour and churn
changes (``concept`` blends the generator's churn model towards a different one, at the
same churn rate). Input-drift checks cannot see it; only performance measured against the
labels can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from churn.errors import ChurnError


@dataclass(frozen=True)
class Scenario:
    """A drift scenario.

    Attributes:
        name: Identifier used on the command line.
        description: One line for humans.
        shifts: Column -> the stated change at strength 1 (human readable).
        channel_mix: Replacement acquisition-channel probabilities (None keeps the base mix).
        aov_factor: Multiplier on average order value.
        order_factor: Share of orders kept (binomial thinning).
        discount_shift: Added to the discount usage rate (clipped to [0, 1]).
        cart_abandonment_shift: Added to the cart abandonment rate (clipped to [0, 1]).
        session_factor: Share of sessions kept (binomial thinning).
        app_usage_factor: Multiplier on app minutes.
        email_open_shift: Added to the email open rate (clipped to [0, 1]).
        recency_shift_days: Added to days since last purchase (capped at tenure).
        extra_tickets: Mean of extra Poisson support tickets.
        satisfaction_shift: Added to the satisfaction score (clipped to [1, 5]).
        concept: Weight of the changed churn model at strength 1 (0 = the base model, 1 = only
            the new one); the intercept is re-fitted so the churn rate stays the same.

    """

    name: str
    description: str
    shifts: dict[str, str] = field(default_factory=dict)
    channel_mix: dict[str, float] | None = None
    aov_factor: float = 1.0
    order_factor: float = 1.0
    discount_shift: float = 0.0
    cart_abandonment_shift: float = 0.0
    session_factor: float = 1.0
    app_usage_factor: float = 1.0
    email_open_shift: float = 0.0
    recency_shift_days: float = 0.0
    extra_tickets: float = 0.0
    satisfaction_shift: float = 0.0
    concept: float = 0.0

    @property
    def moved_columns(self) -> tuple[str, ...]:
        """Raw columns whose distribution this scenario changes."""
        return tuple(self.shifts)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("none", "No drift: the reference population."),
        Scenario(
            "price_shock",
            "Prices rise 20%: customers order less, hunt for discounts and abandon more carts.",
            shifts={
                "avg_order_value": "x1.20",
                "total_spend": "follows orders x avg_order_value",
                "total_orders": "x0.80 (binomial thinning)",
                "discount_usage_rate": "+0.20",
                "cart_abandonment_rate": "+0.15",
            },
            aov_factor=1.20,
            order_factor=0.80,
            discount_shift=0.20,
            cart_abandonment_shift=0.15,
        ),
        Scenario(
            "channel_shift",
            "Marketing moves to social and affiliate ads: social 15%->40%, affiliate 8%->25% of new customers.",
            shifts={"acquisition_channel": "social 0.40, affiliate 0.25 (from 0.15, 0.08)"},
            channel_mix={
                "organic_search": 0.12,
                "paid_search": 0.08,
                "social": 0.40,
                "email": 0.04,
                "referral": 0.05,
                "affiliate": 0.25,
                "direct": 0.06,
            },
        ),
        Scenario(
            "engagement_decline",
            "Customers lose interest: fewer sessions, less app use, fewer opened emails, longer purchase gaps.",
            shifts={
                "sessions_last_30d": "x0.50 (binomial thinning)",
                "app_usage_minutes_30d": "x0.50",
                "email_open_rate": "-0.12",
                "days_since_last_purchase": "+30 days",
            },
            session_factor=0.50,
            app_usage_factor=0.50,
            email_open_shift=-0.12,
            recency_shift_days=30,
        ),
        Scenario(
            "service_outage",
            "A fulfilment outage: more support tickets and lower satisfaction.",
            shifts={"support_tickets_90d": "+Poisson(1.0)", "satisfaction_score": "-1"},
            extra_tickets=1.0,
            satisfaction_shift=-1.0,
        ),
    )
}


#: Scenarios that change what churn depends on, not what customers look like.
CONCEPT_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "concept_drift",
            "A competitor wins over the engaged: active, app-using, email-reading customers now leave, lapsed ones "
            "stay; no input column moves and the churn rate stays the same.",
            concept=1.0,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """Return the scenario called ``name``, or raise a :class:`ChurnError` naming the known ones."""
    try:
        return SCENARIOS[name] if name in SCENARIOS else CONCEPT_SCENARIOS[name]
    except KeyError:
        known = ", ".join([*SCENARIOS, *CONCEPT_SCENARIOS])
        raise ChurnError(f"unknown drift scenario {name!r}; known scenarios: {known}") from None
