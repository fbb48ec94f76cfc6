"""The registry stages (``components/registry.py``): log and register the candidates, run the promotion gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.engine import engine_for
from churn.provenance import engine_tags, git_commit
from churn.stages.markdown import comparison_markdown
from churn.stages.training import load_model, read_split

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the functions that use them, not by every task.
if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile
    from churn.training.models import ChurnModel


def register(
    model_dirs: dict[str, str | Path],
    selection: dict[str, Any],
    test_path: str | Path,
    *,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    artifact_location: str | None = None,
    fingerprint: str = "",
    kfp_run_id: str = "",
    timeout: int = 10,
    retries: int = 2,
    train_path: str | Path | None = None,
    psi_bins: int = 10,
) -> dict[str, str]:
    """Log a parent run with a nested run per candidate, then register the winner as ``@challenger``.

    With ``train_path`` (the training split), the winner is logged with its monitoring
    reference: the profile of the training rows, its probabilities on them and its test
    ROC-AUC (see :func:`reference_for`), plus a sample of the rows for Evidently.

    Returns the parent run id, the winner's run id and the new model version.
    """
    import mlflow

    from churn.registry.mlflow_registry import connect, log_candidate, mlflow_errors, register_challenger

    with mlflow_errors(tracking_uri, "log the training run and register the winner"):
        experiment_id = connect(
            tracking_uri, experiment=experiment, artifact_location=artifact_location, timeout=timeout, retries=retries
        )
        example, test_labels = example_and_test_labels(test_path)
        tags = {"data_fingerprint": fingerprint, "git_commit": git_commit(), "kfp_run_id": kfp_run_id}
        by_family = {row["family"]: row for row in selection["candidates"]}
        run_name = f"training {kfp_run_id or time.strftime('%Y%m%d-%H%M%S')}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as parent:
            winner_info = load_model(model_dirs[selection["winner"]]).info
            mlflow.set_tags({**tags, "winner": selection["winner"], **engine_tags(winner_info)})
            mlflow.log_text(comparison_markdown(selection), "comparison.md")
            mlflow.log_metrics({f"winner_test_{k}": v for k, v in selection["winner_test"].items()})
            winner_uri = winner_run = ""
            for family, folder in model_dirs.items():
                model = load_model(folder)
                row = by_family[family]
                metrics = {f"val_{k}": v for k, v in model.info["validation"].items()}
                metrics |= {f"test_{k}": v for k, v in row["test"].items()}
                metrics |= {"fit_seconds": row["fit_seconds"]}
                reference = sample = deciles = None
                if family == selection["winner"] and train_path is not None:
                    train = reference_rows(train_path)
                    reference, sample = reference_for(
                        model, train, roc_auc=row["test"]["roc_auc"], test_labels=test_labels, bins=psi_bins
                    )
                    deciles = risk_deciles_for(model, train)
                with mlflow.start_run(run_name=family, nested=True) as child:
                    uri = log_candidate(
                        model,
                        example=example,
                        metrics=metrics,
                        tags={**tags, "family": family, **engine_tags(model.info)},
                        reference=reference,
                        reference_sample=sample,
                        risk_deciles=deciles,
                    )
                if family == selection["winner"]:
                    winner_uri, winner_run = uri, child.info.run_id
            version = register_challenger(
                winner_uri,
                model_name,
                tags={
                    **tags,
                    "family": selection["winner"],
                    "run_id": winner_run,
                    "test_roc_auc": f"{selection['winner_test']['roc_auc']:.6f}",
                },
            )
            mlflow.set_tag("registered_version", version)
    return {"parent_run_id": parent.info.run_id, "winner_run_id": winner_run, "version": version}


def example_and_test_labels(test_path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """Five input rows (the model's logged example) and the label column of the test split, file or folder."""
    return engine_for(None, test_path).example_and_labels(test_path)


def reference_rows(train_path: str | Path) -> pd.DataFrame:
    """The training rows a reference is fitted on: the whole split file, or a seeded bounded sample of a folder.

    On the Dask engine the profile's bin edges, category shares and the deciles come from
    :data:`churn.engine.dask.stages.SINGLE_NODE_SAMPLE_ROWS` rows: quantiles of 500K rows are within a
    fraction of a percentile of the whole split's, and the driver stays bounded at any size. A
    folder within that many rows is read whole, in order: the very rows the sample would hold.
    """
    return engine_for(None, train_path).reference_rows(train_path)


def reference_for(
    model: ChurnModel,
    train: pd.DataFrame,
    *,
    roc_auc: float,
    test_labels: pd.Series,
    bins: int = 10,
    sample_rows: int = 2_000,
) -> tuple[ReferenceProfile, pd.DataFrame]:
    """The monitoring reference of a model: its training rows' profile and a seeded sample of them.

    The profile holds the bin edges and category frequencies of the training split, the
    distribution of the model's probabilities on it, and its test ROC-AUC with that
    estimate's standard error (from the test labels): what "normal" means for this model.
    """
    from churn.monitoring.reference import fit_reference
    from churn.monitoring.stats import roc_auc_standard_error

    positives = int(test_labels.sum())
    se = roc_auc_standard_error(roc_auc, positives, len(test_labels) - positives)
    profile = fit_reference(train, model.predict_proba(train), roc_auc=roc_auc, roc_auc_standard_error=se, bins=bins)
    sample = train.sample(n=min(sample_rows, len(train)), random_state=0).sort_index()
    return profile, sample.reset_index(drop=True)


def risk_deciles_for(model: ChurnModel, train: pd.DataFrame) -> list[float]:
    """Risk decile cut points of a model: the deciles of its probabilities on its training rows."""
    from churn.scoring.batch import fit_risk_deciles

    return fit_risk_deciles(model.predict_proba(train))


def promote(
    version: str,
    test_path: str | Path,
    *,
    tracking_uri: str,
    model_name: str,
    margin: float,
    parent_run_id: str = "",
    timeout: int = 10,
    retries: int = 2,
    identity: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    """Run the promotion gate for ``version`` and log the decision to the parent run.

    ``identity`` (user, password) is the gate's own MLflow user: with the churn-auth server app
    only MANAGE on the registered model moves ``@champion``, and only the gate's user has it.
    """
    import mlflow

    from churn.registry.mlflow_registry import connect_registry, mlflow_errors, mlflow_identity, promote_if_better

    with mlflow_identity(*identity), mlflow_errors(tracking_uri, "run the promotion gate (move @champion)"):
        connect_registry(tracking_uri, timeout=timeout, retries=retries)
        decision = promote_if_better(model_name, version, read_split(test_path), margin=margin)
        if parent_run_id:
            client = mlflow.MlflowClient()
            client.log_metric(parent_run_id, "gate_challenger_roc_auc", decision.challenger_roc_auc)
            if decision.champion_roc_auc is not None:
                client.log_metric(parent_run_id, "gate_champion_roc_auc", decision.champion_roc_auc)
            client.set_tag(parent_run_id, "gate_decision", "promoted" if decision.promoted else "rejected")
            client.set_tag(parent_run_id, "gate_reason", decision.reason)
    return decision.as_dict()
