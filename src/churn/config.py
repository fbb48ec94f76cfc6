"""All settings, from defaults, ``CHURN_*`` environment variables or a ``.env`` file.

Defaults run everything on a laptop with no cluster and no cloud account. Nested
settings use ``__`` in variable names, e.g. ``CHURN_DATA__ROWS=5000`` or
``CHURN_VALIDATION__MIN_ROWS=10``. Nothing happens at import: settings are read when
:func:`get_settings` is called, and no folder is created until something is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DataSettings(BaseModel):
    """Synthetic data generation."""

    rows: int = Field(100_000, ge=1, description="Rows of the initial load.")
    daily_rows: int = Field(1_000, ge=1, description="Rows of a daily increment.")
    seed: int = Field(42, description="Random seed of the generator.")
    churn_rate: float = Field(0.25, ge=0.01, le=0.9, description="Churn rate of the undrifted population.")
    date: dt.date | None = Field(None, description="Snapshot date of the main job; today (UTC) when unset.")
    format: Literal["csv", "parquet"] = Field("csv", description="File format of raw exports.")


class ValidationSettings(BaseModel):
    """Raw-data validation."""

    min_rows: int = Field(100, ge=1, description="Fewest data rows a valid file may have.")
    max_examples: int = Field(5, ge=1, le=100, description="Example rows listed per violation.")


class FeatureSettings(BaseModel):
    """Feature engineering."""

    rfm_bins: int = Field(5, ge=2, le=10, description="Quantile bins of each RFM score (fitted on training data).")


class Settings(BaseSettings):
    """Top-level settings of churn-mlops."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of raw data, reports and feature tables.")
    data: DataSettings = DataSettings()
    validation: ValidationSettings = ValidationSettings()
    features: FeatureSettings = FeatureSettings()

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def truth_dir(self) -> Path:
        """True churn probabilities of generated files (never used as features)."""
        return self.data_dir / "truth"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"


def get_settings() -> Settings:
    """Read the settings now (environment and ``.env`` included)."""
    return Settings()
