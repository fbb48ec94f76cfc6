"""The stages of the training pipeline as plain functions on files.

Each KFP component in ``components/`` is a few lines that map its artifacts to paths and
call one function here, so the same code runs in a KFP pod, in the local KFP runner,
in tests and in the benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.data.files import write_raw
from churn.data.increments import fetch
from churn.data.schema import LABEL
from churn.errors import ChurnError
from churn.storage import atomic_path, write_json
from churn.storage.local import file_fingerprint

# Each task is a fresh interpreter that runs one step: heavy libraries (scikit-learn,
# pandera, MLflow) are imported by the steps that use them, not by every task.
if TYPE_CHECKING:
    from churn.monitoring.reference import ReferenceProfile
    from churn.training.models import ChurnModel

MODEL_FILE = "churn_model.joblib"
INFO_FILE = "info.json"
SELECTION_FILE = "selection.json"
ENGINES = ("pandas", "dask")


def git_commit() -> str:
    """The commit of the running code: ``CHURN_GIT_COMMIT`` (set in images), else ``git``, else unknown."""
    if commit := os.environ.get("CHURN_GIT_COMMIT"):
        return commit
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_data(
    out: str | Path,
    *,
    source_uri: str = "",
    rows: int = 100_000,
    date: str = "",
    seed: int = 42,
    scenario: str = "none",
    churn_rate: float = 0.25,
    engine: str = "pandas",
) -> dict[str, Any]:
    """Generate a day's customers into ``out`` (CSV), or copy an existing export from ``source_uri``.

    ``source_uri`` may be a local path or ``s3://bucket/key`` (read with boto3, which
    honours ``AWS_*`` and ``AWS_ENDPOINT_URL``/``MLFLOW_S3_ENDPOINT_URL``). On the
    ``dask`` engine ``out`` is a folder of ``part-*.parquet`` (generated in bounded memory, or
    copied from a parquet folder, file or ``s3://`` prefix).
    """
    from churn.data import iter_customer_blocks

    out = Path(out)
    check_engine(engine)
    if engine == "dask":
        from churn.scale import dataset
        from churn.scale import steps as dask_steps
        from churn.scale.generate import write_partitioned

        if source_uri:
            dask_steps.ingest(source_uri, out)
            source = source_uri
        else:
            # Generated on this process in bounded memory, then moved into place or uploaded for remote workers.
            local = out.with_name(f".{out.name}.generated")
            blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
            dataset.publish_local(write_partitioned((b.frame for b in blocks), local), out)
            source = f"generated ({rows} rows, seed {seed}, scenario {scenario})"
        fingerprint, size = dataset.fingerprint(out)
        return {"path": str(out), "source": source, "fingerprint": fingerprint, "bytes": size}
    if source_uri:
        fetch(source_uri, out)
        source = source_uri
    else:
        blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
        write_raw((b.frame for b in blocks), out, "csv")
        source = f"generated ({rows} rows, seed {seed}, scenario {scenario})"
    return {"path": str(out), "source": source, "fingerprint": file_fingerprint(out), "bytes": out.stat().st_size}


def check_engine(engine: str) -> None:
    """Refuse an engine other than ``pandas`` or ``dask``, naming it."""
    if engine not in ENGINES:
        raise ChurnError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def validate(
    raw: str | Path,
    report: str | Path,
    *,
    summary: str | Path | None = None,
    min_rows: int = 100,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate the raw export, write the JSON report (and a Markdown summary); raise after writing when invalid.

    ``source`` is what the report names as the data: the user's file or URI, not the
    pipeline's copy of it at ``raw``. A folder of parquet parts is validated on the Dask engine.
    """
    from churn.validation import validate_and_report

    if Path(raw).is_dir():
        from churn.scale.validation import validate_and_report_dask

        report_ = validate_and_report_dask(raw, report, summary_path=summary, min_rows=min_rows, source=source)
        return report_.to_dict()
    _, result = validate_and_report(raw, report, summary_path=summary, min_rows=min_rows, source=source)
    return result.to_dict()


def write_text(path: str | Path, text: str) -> None:
    """Write a text artifact (Markdown for the KFP UI), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def split(
    raw: str | Path,
    outputs: dict[str, str | Path],
    *,
    seed: int = 42,
    validation_size: float = 0.15,
    test_size: float = 0.15,
) -> dict[str, int]:
    """Split a validated raw export 70/15/15 into parquet files, by a seeded hash of ``customer_id`` per class.

    The export was validated by the previous step; it is only parsed here (the schema
    checks are not paid twice), and a file that no longer parses still fails clearly. A folder
    of parquet parts is split on the Dask engine into folders (see :func:`churn.scale.steps.split`):
    both engines put every customer in the same split (see :mod:`churn.scale.split`).
    """
    if Path(raw).is_dir():
        from churn.scale import steps as dask_steps

        with dask_steps.engine_client(name="churn-split"):
            return dask_steps.split(raw, outputs, seed=seed, validation_size=validation_size, test_size=test_size)
    from churn.scale.split import SPLITS, hash_split_frame
    from churn.validation import DataValidationError, ValidationReport
    from churn.validation.reader import read_raw_file

    parsed = read_raw_file(raw)
    if parsed.frame is None or parsed.violations:
        raise DataValidationError(ValidationReport(source=str(raw), violations=parsed.violations))
    frame = parsed.frame
    parts = hash_split_frame(frame, seed=seed, validation_size=validation_size, test_size=test_size)
    for name in SPLITS:
        write_raw([parts[name]], outputs[name], "parquet")
    return {f"{name}_rows": len(parts[name]) for name in SPLITS}


def read_split(path: str | Path) -> pd.DataFrame:
    """Read a split written by :func:`split` (dates as ``datetime64``, as the feature code prefers)."""
    import pyarrow.parquet as pq

    if Path(path).is_dir():  # the Dask engine's dataset: its folder of parts, or the S3 prefix it points at
        from churn.scale.dataset import arrow_dataset

        folder: pd.DataFrame = arrow_dataset(path).to_table().to_pandas(date_as_object=False)
        return folder
    frame: pd.DataFrame = pq.read_table(path).to_pandas(date_as_object=False)
    return frame


def train(
    family: str,
    train_path: str | Path,
    validation_path: str | Path,
    model_dir: str | Path,
    *,
    params: dict[str, Any],
    n_jobs: int = 2,
    seed: int = 42,
) -> dict[str, Any]:
    """Train one family; save the model and its info (metrics, timings) into ``model_dir``.

    Split folders (the Dask engine's) train on a Dask cluster: see :func:`churn.scale.steps.train`.
    """
    from churn.training.models import train_family

    if Path(train_path).is_dir():
        from churn.scale import steps as dask_steps
        from churn.scale.training import DASK_FAMILIES

        # The sampled families fit a seeded sample here: no cluster to start for them.
        cluster = (
            dask_steps.engine_client(name=f"churn-train-{family.replace('_', '-')}")
            if family in DASK_FAMILIES
            else nullcontext()
        )
        with cluster as client:
            model = dask_steps.train(
                family, client, train_path, validation_path, params=params, n_jobs=n_jobs, seed=seed
            )
        save_model(model, model_dir)
        return model.info
    model = train_family(family, read_split(train_path), read_split(validation_path), params, n_jobs=n_jobs, seed=seed)
    save_model(model, model_dir)
    return model.info


def save_model(model: ChurnModel, folder: str | Path) -> None:
    """Save a trained model and its info between pipeline steps."""
    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MODEL_FILE) as tmp:
        joblib.dump(model, tmp)
    write_json(
        {"family": model.family, "threshold": model.threshold, "params": model.params, **model.info}, folder / INFO_FILE
    )


def load_model(folder: str | Path) -> ChurnModel:
    """Load a model saved by :func:`save_model`."""
    import joblib

    from churn.training.models import ChurnModel

    model = joblib.load(Path(folder) / MODEL_FILE)
    if not isinstance(model, ChurnModel):
        raise ChurnError(f"{folder} does not hold a churn model")
    return model


@contextmanager
def scoring_on_test(test_path: str | Path) -> Iterator[tuple[np.ndarray, Callable[[ChurnModel], np.ndarray]]]:
    """The test split's labels and a function giving a model's probabilities on its rows.

    A split folder (the Dask engine's) larger than one process should hold is scored partition
    by partition on a Dask cluster that lives as long as the ``with`` block; a file, or a folder
    within :data:`churn.scale.steps.SINGLE_NODE_SAMPLE_ROWS` rows, is read into memory (the same
    probabilities, without a cluster's start-up).
    """
    if Path(test_path).is_dir() and not _fits_in_process(test_path):
        from churn.scale import steps as dask_steps

        with dask_steps.engine_client(name="churn-evaluate"):
            yield dask_steps.scorer(test_path)
        return
    test = read_split(test_path)
    yield test[LABEL].to_numpy(dtype=np.int64), lambda model: model.predict_proba(test)


def select(model_dirs: dict[str, str | Path], test_path: str | Path, winner_dir: str | Path) -> dict[str, Any]:
    """Evaluate every candidate on the test split and keep the one with the best validation ROC-AUC.

    Selection uses validation ROC-AUC: it ranks customers for a retention campaign
    independently of the churn rate and of the threshold, and the test split stays
    untouched until the final numbers. Returns a comparison, the winner's test metrics
    and its ROC curve and confusion matrix.
    """
    from churn.training.evaluate import classification_metrics, curves

    with scoring_on_test(test_path) as (y, score):
        rows = []
        probabilities = {}
        for family, folder in model_dirs.items():
            model = load_model(folder)
            start = time.perf_counter()
            p = score(model)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "family": family,
                    "val_roc_auc": model.info["validation"]["roc_auc"],
                    "val_pr_auc": model.info["validation"]["pr_auc"],
                    "threshold": model.threshold,
                    "test": classification_metrics(y, p, model.threshold),
                    "fit_seconds": model.info["fit_seconds"],
                    "predict_seconds": seconds,
                }
            )
            probabilities[family] = p
    best = max(rows, key=lambda r: r["val_roc_auc"])
    winner = Path(winner_dir)
    if winner.exists():
        shutil.rmtree(winner)
    shutil.copytree(model_dirs[best["family"]], winner)
    selection = {
        "winner": best["family"],
        "candidates": rows,
        "winner_test": best["test"],
        "curves": curves(y, probabilities[best["family"]], best["threshold"]),
    }
    write_json(selection, winner / SELECTION_FILE)
    return selection


def read_selection(winner_dir: str | Path) -> dict[str, Any]:
    """The selection written beside the winning model by :func:`select`."""
    return dict(json.loads((Path(winner_dir) / SELECTION_FILE).read_text()))


def comparison_markdown(selection: dict[str, Any]) -> str:
    """The comparison table shown in the KFP UI and logged to MLflow."""
    lines = [
        f"# Model comparison — winner: **{selection['winner']}** (by validation ROC-AUC)",
        "",
        "| family | val ROC-AUC | test ROC-AUC | test PR-AUC | test F1 | precision | recall | Brier | log loss "
        "| threshold | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(selection["candidates"], key=lambda r: -r["val_roc_auc"]):
        t = row["test"]
        mark = " ✅" if row["family"] == selection["winner"] else ""
        lines.append(
            f"| {row['family']}{mark} | {row['val_roc_auc']:.4f} | {t['roc_auc']:.4f} | {t['pr_auc']:.4f} | "
            f"{t['f1']:.4f} | {t['precision']:.4f} | {t['recall']:.4f} | {t['brier']:.4f} | {t['log_loss']:.4f} | "
            f"{row['threshold']:.3f} | {row['fit_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


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


def engine_tags(info: dict[str, Any]) -> dict[str, str]:
    """The engine a model was trained on, and its Dask cluster's size, as MLflow tags."""
    return {"engine": str(info.get("engine", "pandas")), **{str(k): str(v) for k, v in info.get("cluster", {}).items()}}


def _fits_in_process(path: str | Path) -> bool:
    from churn.scale.steps import fits_in_process

    return fits_in_process(path)


def example_and_test_labels(test_path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
    """Five input rows (the model's logged example) and the label column of the test split, file or folder."""
    if Path(test_path).is_dir():
        from churn.scale import steps as dask_steps

        return dask_steps.head(test_path, 5).drop(columns=[LABEL]), dask_steps.label_column(test_path)
    test = read_split(test_path)
    return test.drop(columns=[LABEL]).head(5), test[LABEL]


def reference_rows(train_path: str | Path) -> pd.DataFrame:
    """The training rows a reference is fitted on: the whole split file, or a seeded bounded sample of a folder.

    On the Dask engine the profile's bin edges, category shares and the deciles come from
    :data:`churn.scale.steps.SINGLE_NODE_SAMPLE_ROWS` rows: quantiles of 500K rows are within a
    fraction of a percentile of the whole split's, and the driver stays bounded at any size. A
    folder within that many rows is read whole, in order: the very rows the sample would hold.
    """
    if Path(train_path).is_dir() and not _fits_in_process(train_path):
        from churn.scale import steps as dask_steps

        return dask_steps.sample(train_path)
    return read_split(train_path)


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


def deploy(
    version: str,
    manifest_path: str | Path,
    *,
    tracking_uri: str,
    model_name: str,
    mode: str,
    namespace: str,
    canary_percent: int | None,
    timeout: float,
) -> dict[str, Any]:
    """Roll ``version`` out to KServe (mode ``cluster``) or write the manifest it would apply (``local``).

    The manifest is written in both modes, so the KFP UI shows what was (or would be) applied.
    An empty ``namespace`` is the settings' (``CHURN_DEPLOY__NAMESPACE``, the chart's namespace).
    """
    from mlflow import MlflowClient

    from churn.config import get_settings
    from churn.deploy import ServingTarget, apply, inference_service, storage_uri, write_manifest
    from churn.registry.mlflow_registry import connect_registry

    if mode not in ("local", "cluster"):
        raise ChurnError(f"deploy mode must be local or cluster, not {mode!r}")
    connect_registry(tracking_uri)
    download_uri = str(MlflowClient().get_model_version_download_uri(model_name, version))
    storage = download_uri if mode == "local" and not download_uri.startswith("s3://") else storage_uri(download_uri)
    target = ServingTarget.from_settings(get_settings(), name=model_name, namespace=namespace)
    manifest = inference_service(target, storage, model_version=version, canary_percent=canary_percent)
    rollout = write_manifest(manifest, Path(manifest_path))
    if mode == "cluster":
        from kubernetes import client, config

        config.load_incluster_config()
        rollout = apply(manifest, client.CustomObjectsApi(), timeout=timeout)
    return {"applied": rollout.applied, "ready": rollout.ready, "message": rollout.message, "storage_uri": storage}


def gate_markdown(decision: dict[str, Any]) -> str:
    """The promotion decision as shown in the KFP UI."""
    verdict = "promoted to @champion" if decision["promoted"] else "not promoted"
    champion = decision["champion_roc_auc"]
    return (
        f"# Promotion gate: v{decision['challenger_version']} {verdict}\n\n"
        f"| model | version | test ROC-AUC |\n|---|---|---|\n"
        f"| challenger | {decision['challenger_version']} | {decision['challenger_roc_auc']:.4f} |\n"
        f"| champion | {decision['champion_version'] or '-'} | {'-' if champion is None else f'{champion:.4f}'} |\n\n"
        f"Margin: {decision['margin']}. {decision['reason']}.\n"
    )


# --- daily data and monitoring pipelines -------------------------------------------------


def validate_current(
    raw: str | Path,
    report: str | Path,
    *,
    summary: str | Path | None = None,
    min_rows: int = 100,
    pushgateway_url: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Validate the increment to monitor; when it is invalid or empty, record a failed monitoring run.

    The failure is pushed (``churn_monitoring_failed 1``) when a Pushgateway is given,
    then the validation error is raised: bad data never passes silently. ``source`` names
    the increment in the report (the file or URI it was loaded from).
    """
    from churn.validation import DataValidationError

    try:
        return validate(raw, report, summary=summary, min_rows=min_rows, source=source)
    except DataValidationError as error:
        if pushgateway_url:
            from churn.config import get_settings
            from churn.monitoring.publish import push_failure

            s = get_settings().monitoring
            try:
                push_failure(pushgateway_url, job=s.push_job, timeout=s.push_timeout_seconds)
            except ChurnError as push_error:
                error.add_note(str(push_error))
        raise ChurnError(f"monitoring failed: the current data is invalid: {error}") from error


def monitor(
    raw: str | Path,
    *,
    json_path: str | Path,
    markdown_path: str | Path | None = None,
    html_path: str | Path | None = None,
    tracking_uri: str,
    model_uri: str,
    pushgateway_url: str | None = None,
    timeout: int = 10,
    retries: int = 2,
    source: str | None = None,
) -> dict[str, Any]:
    """Check a daily increment against the reference of a registered model (the champion).

    Loads the model and its reference profile from MLflow, scores the increment, runs the
    drift and performance checks, writes the JSON, Markdown and Evidently HTML reports
    and pushes the metrics (see :func:`churn.monitoring.run.run_monitoring` for the failure
    rules). ``source`` names the increment in the report (the file or URI it was loaded
    from; ``raw`` when omitted).

    Returns:
        The report as a dict (``source``, ``verdict``, ``flagged``, ...).

    """
    from churn.config import get_settings
    from churn.registry.mlflow_registry import connect_registry, download_model
    from churn.registry.model_dir import load_model_dir, reference_from_dir, reference_sample_from_dir
    from churn.validation.reader import read_raw_file

    settings = get_settings().monitoring
    url = pushgateway_url or None
    connect_registry(tracking_uri, timeout=timeout, retries=retries)
    folder = download_model(model_uri)
    model = load_model_dir(folder)
    profile = reference_from_dir(folder)
    sample = reference_sample_from_dir(folder)
    if not Path(raw).is_dir():
        parsed = read_raw_file(raw)
        if parsed.frame is None or parsed.violations:
            reasons = "; ".join(v.message for v in parsed.violations) or "unreadable"
            raise ChurnError(f"monitoring failed: the current data cannot be read: {reasons}")
        frame = parsed.frame
        return _run_monitoring(
            model, profile, sample, frame, None, json_path, markdown_path, html_path, url, source or str(raw)
        )

    from churn.scale import steps as dask_steps
    from churn.scale.frames import read_raw, typed
    from churn.scale.monitoring import check_drift_dask

    # A folder of parts (the Dask engine's): the checks count every row per partition, and
    # Evidently's report draws from a bounded seeded sample of them.
    with dask_steps.engine_client(name="churn-monitor"):
        current = typed(read_raw(raw))
        shown = dask_steps.sample(raw, 20_000)
        check = lambda: check_drift_dask(profile, current, model, settings=settings)[0]  # noqa: E731
        return _run_monitoring(
            model, profile, sample, shown, check, json_path, markdown_path, html_path, url, source or str(raw)
        )


def _run_monitoring(
    model: ChurnModel,
    profile: ReferenceProfile,
    sample: pd.DataFrame | None,
    current: pd.DataFrame,
    check: Callable[[], Any] | None,
    json_path: str | Path,
    markdown_path: str | Path | None,
    html_path: str | Path | None,
    pushgateway_url: str | None,
    source: str,
) -> dict[str, Any]:
    from churn.config import get_settings
    from churn.monitoring.run import run_monitoring

    run = run_monitoring(
        profile,
        current,
        model.predict_proba(current) if len(current) else None,
        json_path=json_path,
        markdown_path=markdown_path,
        html_path=html_path if sample is not None else None,
        reference_frame=sample,
        reference_probabilities=None if sample is None else model.predict_proba(sample),
        settings=get_settings().monitoring,
        pushgateway_url=pushgateway_url,
        check=check,
        source=source,
    )
    return run.report.to_dict()


def monitoring_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The key numbers of a drift report, for the KFP Metrics artifact."""
    from churn.monitoring.report import LEVELS

    features = report.get("features", [])
    metrics = {
        "verdict_level": float(LEVELS.index(report["verdict"])),
        "drifted_features": float(len(report["flagged"])),
        "warned_features": float(len(report["warned"])),
        "current_rows": float(report["current_rows"]),
        "max_feature_psi": max((float(f["psi"]) for f in features if f.get("psi") is not None), default=0.0),
        "max_feature_wasserstein": max(
            (float(f["wasserstein"]) for f in features if f.get("wasserstein") is not None), default=0.0
        ),
    }
    optional = {
        "churn_rate_delta": ("churn_rate", "delta"),
        "prediction_psi": ("prediction", "psi"),
        "recent_roc_auc": ("performance", "roc_auc"),
    }
    for name, (section, key) in optional.items():
        value = (report.get(section) or {}).get(key)
        if value is not None:
            metrics[name] = float(value)
    return metrics
