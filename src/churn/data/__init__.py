"""Synthetic customer data: the raw schema, the generator and its drift scenarios."""

from churn.data.generator import GeneratedCustomers, generate_customers, iter_customer_blocks
from churn.data.scenarios import CONCEPT_SCENARIOS, SCENARIOS, Scenario, get_scenario

__all__ = [
    "CONCEPT_SCENARIOS",
    "SCENARIOS",
    "GeneratedCustomers",
    "Scenario",
    "generate_customers",
    "get_scenario",
    "iter_customer_blocks",
]
