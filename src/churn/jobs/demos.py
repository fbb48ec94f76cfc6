"""The main job's demonstrations: a few records scored by the local service, a day's predictions logged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config import Settings
from churn.data.schema import ID
from churn.errors import ChurnError


def serving_demo(settings: Settings, raw_path: Path, *, rows: int = 5) -> list[dict[str, object]]:
    """Start predictor and transformer on the champion, score ``rows`` records of ``raw_path``, stop both.

    Returns:
        One answer per record: customer id, churn probability and label, model version.

    """
    from churn.serving.client import answer_rows, predict_records, read_records_file
    from churn.serving.local import LocalService, ServiceConfig

    records = read_records_file(raw_path)[:rows]
    config = ServiceConfig.from_settings(settings)
    with LocalService(config).start(timeout=settings.serving.start_timeout_seconds):
        answer = predict_records(config.transformer_url, config.model_name, records)
    return [row | {"model_version": answer.get("model_version")} for row in answer_rows(answer)]


def log_day_predictions(settings: Settings, raw_path: Path, *, label_delay_days: int | None = None) -> dict[str, Any]:
    """Score a published day with the champion, log the predictions and emit the day's delayed labels.

    This stands in for the daily batch scoring run (it logs through the same
    :func:`~churn.predictions.log.write_prediction_log`) and for the outcomes that
    arrive ``label_delay_days`` later (the generator's ``labels_YYYYMMDD.csv``), so the
    main job can show the performance loop on a laptop.

    Returns:
        What was written: ``predictions`` (objects), ``labels`` (files), ``version``, ``rows``.

    """
    from mlflow import MlflowClient

    from churn.data.labels import publish_labels
    from churn.predictions.log import write_prediction_log
    from churn.registry.mlflow_registry import CHAMPION, connect_registry, load_churn_model
    from churn.validation.reader import read_raw_file

    connect_registry(settings.tracking_uri, timeout=settings.mlflow.timeout_seconds)
    name = settings.mlflow.model_name
    version = str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    model = load_churn_model(f"models:/{name}/{version}")
    parsed = read_raw_file(raw_path)
    if parsed.frame is None or parsed.violations:
        raise ChurnError(f"cannot score {raw_path}: " + "; ".join(v.message for v in parsed.violations))
    frame = parsed.frame
    probabilities = model.predict_proba(frame)
    scored = pd.DataFrame(
        {
            ID: frame[ID],
            "churn_probability": probabilities,
            "churn_label": (probabilities >= model.threshold).astype("int8"),
        }
    )
    day = pd.Timestamp(frame["snapshot_date"].iloc[0]).date()
    when = dt.datetime.combine(day, dt.time(6, 0), tzinfo=dt.UTC)
    written = write_prediction_log(
        scored,
        settings.prediction_log_uri,
        run_id=f"batch-{day:%Y%m%d}",
        model_name=name,
        model_version=version,
        scored_at=when,
    )
    delay = settings.performance.label_delay_days if label_delay_days is None else label_delay_days
    labels = publish_labels(frame, delay, settings.labels_uri)
    return {"predictions": written, "labels": labels, "version": version, "rows": len(frame)}
