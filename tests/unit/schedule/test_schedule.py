"""`churn schedule` against a recording stand-in of the KFP API (there is no KFP backend here).

The stand-in (``StandInKfp``) keeps pipelines, versions, experiments and recurring runs in
memory with the same method names and return shapes as ``kfp.Client``; the tests check
what a real backend would end up holding.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from churn.errors import ChurnError
from churn.kfp.schedule import SCHEDULES, cluster_parameters, schedule_all, submit_run, typed_arguments

pytestmark = pytest.mark.unit
COMPILED = Path(__file__).resolve().parents[3] / "pipelines" / "compiled"


class StandInKfp:
    def __init__(self) -> None:
        self.ids = (f"id-{n}" for n in itertools.count())
        self.pipelines: dict[str, str] = {}
        self.versions: dict[str, list[SimpleNamespace]] = {}
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, SimpleNamespace] = {}
        self.one_off: dict[str, SimpleNamespace] = {}

    def get_pipeline_id(self, name: str) -> str | None:
        return self.pipelines.get(name)

    def upload_pipeline(self, path: str, pipeline_name: str | None = None, **_: Any) -> Any:
        assert pipeline_name and Path(path).is_file()
        self.pipelines[pipeline_name] = next(self.ids)
        self.versions[self.pipelines[pipeline_name]] = []
        return SimpleNamespace(pipeline_id=self.pipelines[pipeline_name])

    def list_pipeline_versions(self, pipeline_id: str, **_: Any) -> Any:
        return SimpleNamespace(pipeline_versions=list(self.versions[pipeline_id]))

    def upload_pipeline_version(self, path: str, name: str, pipeline_id: str | None = None, **_: Any) -> Any:
        assert pipeline_id is not None
        assert name not in [v.display_name for v in self.versions[pipeline_id]], "duplicate version name"
        version = SimpleNamespace(display_name=name, pipeline_version_id=next(self.ids))
        self.versions[pipeline_id].append(version)
        return version

    def get_experiment(self, experiment_name: str | None = None, **_: Any) -> Any:
        if experiment_name not in self.experiments:
            raise ValueError(f"no experiment {experiment_name}")
        return SimpleNamespace(experiment_id=self.experiments[experiment_name])

    def create_experiment(self, name: str, **_: Any) -> Any:
        self.experiments[name] = next(self.ids)
        return SimpleNamespace(experiment_id=self.experiments[name])

    def list_recurring_runs(self, experiment_id: str | None = None, **_: Any) -> Any:
        return SimpleNamespace(recurring_runs=[r for r in self.runs.values() if r.experiment_id == experiment_id])

    def delete_recurring_run(self, recurring_run_id: str) -> dict[str, Any]:
        del self.runs[recurring_run_id]
        return {}

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs: Any) -> Any:
        assert Path(pipeline_file).is_file()
        run = SimpleNamespace(run_id=next(self.ids), pipeline_file=pipeline_file, state="PENDING", **kwargs)
        self.one_off[run.run_id] = run
        return run

    def wait_for_run_completion(self, run_id: str, timeout: int, sleep_duration: int = 5) -> Any:
        run = self.one_off[run_id]
        if run.state == "PENDING":
            raise TimeoutError("Run timeout")
        return run

    def create_recurring_run(self, experiment_id: str, job_name: str, **kwargs: Any) -> Any:
        run = SimpleNamespace(
            recurring_run_id=next(self.ids), display_name=job_name, experiment_id=experiment_id, **kwargs
        )
        self.runs[run.recurring_run_id] = run
        return run


def test_four_schedules_with_kfp_cron_one_at_a_time_no_catch_up() -> None:
    kfp = StandInKfp()
    scheduled = schedule_all(kfp, COMPILED, service_account="churn-deployer", params={"data": {"rows": 1000}})
    assert [s["name"] for s in scheduled] == [
        "churn-data-daily",
        "churn-training-weekly",
        "churn-scoring-daily",
        "churn-monitoring-daily",
    ]
    runs = {r.display_name: r for r in kfp.runs.values()}
    assert runs["churn-data-daily"].cron_expression == "0 0 2 * * *"
    assert runs["churn-training-weekly"].cron_expression == "0 0 3 * * 0"  # Sunday
    assert runs["churn-monitoring-daily"].cron_expression == "0 0 6 * * *"
    assert runs["churn-scoring-daily"].cron_expression == "0 0 4 * * *"  # after the 02:00 data run
    for run in runs.values():
        assert run.max_concurrency == 1 and run.no_catchup is True and run.service_account == "churn-deployer"
        assert run.version_id in {v.pipeline_version_id for vs in kfp.versions.values() for v in vs}
    assert runs["churn-data-daily"].params == {"rows": 1000}
    assert set(kfp.pipelines) == {"churn-data", "churn-training", "churn-monitoring", "churn-scoring"}


def test_running_again_replaces_and_never_duplicates() -> None:
    kfp = StandInKfp()
    schedule_all(kfp, COMPILED)
    first = set(kfp.runs)
    schedule_all(kfp, COMPILED)
    assert len(kfp.runs) == len(SCHEDULES) and not first & set(kfp.runs)  # replaced, same count
    assert all(len(versions) == 1 for versions in kfp.versions.values())  # unchanged YAML: no new version
    assert len(kfp.experiments) == 1


def test_a_changed_pipeline_gets_a_new_version(tmp_path: Path) -> None:
    for path in COMPILED.glob("*_pipeline.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    kfp = StandInKfp()
    schedule_all(kfp, tmp_path)
    (tmp_path / "training_pipeline.yaml").write_text((tmp_path / "training_pipeline.yaml").read_text() + "\n# v2\n")
    schedule_all(kfp, tmp_path)
    assert len(kfp.versions[kfp.pipelines["churn-training"]]) == 2
    assert len(kfp.versions[kfp.pipelines["churn-data"]]) == 1


def test_missing_compiled_pipelines_are_named(tmp_path: Path) -> None:
    with pytest.raises(ChurnError, match=r"compiled pipelines missing: .*data_pipeline\.yaml"):
        schedule_all(StandInKfp(), tmp_path)


def test_cluster_runs_read_the_releases_secret_and_configmap_and_share_increments_through_s3() -> None:
    params = cluster_parameters(release="prod", increments_uri="s3://lake/churn/daily", scored_uri="s3://lake/scored")
    for pipeline in ("data", "training", "monitoring", "scoring"):
        assert params[pipeline]["s3_secret"] == "prod-s3"
        assert params[pipeline]["cluster_env"] == "prod-pipeline-env"
    assert params["data"]["destination"] == params["monitoring"]["current_uri"] == "s3://lake/churn/daily/"
    assert params["training"]["deploy_mode"] == "cluster"
    # Each pipeline runs as its own MLflow user; the gate as the one that may move @champion.
    assert params["training"]["mlflow_secret"] == "prod-mlflow-pipeline"
    assert params["training"]["gate_secret"] == "prod-mlflow-gate"
    assert params["monitoring"]["mlflow_secret"] == "prod-mlflow-reader"
    assert params["monitoring"]["pushgateway_secret"] == "prod-pushgateway"
    assert "mlflow_secret" not in params["data"]
    assert params["scoring"]["source_uri"] == "s3://lake/churn/daily/" and params["scoring"]["latest_only"] is True
    assert params["scoring"]["destination"] == "s3://lake/scored/"
    assert "retrain_on_alert" not in params["monitoring"]
    retraining = cluster_parameters(s3_secret="mine", retrain_on_alert=True)["monitoring"]
    assert retraining["s3_secret"] == "mine" and retraining["retrain_mode"] == "kfp" and retraining["retrain_on_alert"]
    for bad in ("data/increments/", "s3://", "/tmp/x"):
        with pytest.raises(ChurnError, match="s3://bucket/prefix"):
            cluster_parameters(increments_uri=bad)
        with pytest.raises(ChurnError, match="scored table URI"):
            cluster_parameters(scored_uri=bad)


def test_every_cluster_parameter_is_one_the_compiled_pipeline_takes() -> None:
    import yaml

    params = cluster_parameters(tracking_uri="http://mlflow:5000", retrain_on_alert=True)
    for pipeline, given in params.items():
        spec = next(yaml.safe_load_all((COMPILED / f"{pipeline}_pipeline.yaml").read_text()))
        assert set(given) <= set(spec["root"]["inputDefinitions"]["parameters"]), pipeline


def test_key_value_parameters_are_typed_as_the_pipeline_declares() -> None:
    package = COMPILED / "training_pipeline.yaml"
    typed = typed_arguments(package, {"rows": "5000", "gate_margin": "0.01", "date": "2026-01-05"})
    assert typed == {"rows": 5000, "gate_margin": 0.01, "date": "2026-01-05"}
    assert typed_arguments(COMPILED / "monitoring_pipeline.yaml", {"retrain_on_alert": "True"}) == {
        "retrain_on_alert": True
    }
    with pytest.raises(ChurnError, match="takes no parameter row"):
        typed_arguments(package, {"row": "5"})
    with pytest.raises(ChurnError, match=r"rows='many': expected number_integer"):
        typed_arguments(package, {"rows": "many"})
    with pytest.raises(ChurnError, match="retrain_on_alert='yes'"):
        typed_arguments(COMPILED / "monitoring_pipeline.yaml", {"retrain_on_alert": "yes"})


def test_a_one_off_run_is_submitted_and_waited_for() -> None:
    kfp = StandInKfp()
    package = COMPILED / "training_pipeline.yaml"
    submitted = submit_run(kfp, package, {"rows": 5000}, service_account="churn-deployer")
    assert submitted["state"] == "SUBMITTED"
    run = kfp.one_off[submitted["run_id"]]
    assert run.arguments == {"rows": 5000} and run.service_account == "churn-deployer"
    assert run.experiment_name == "churn" and run.run_name.startswith("churn-training ")
    # Waiting: a run that never finishes, one that failed, one that succeeded.
    with pytest.raises(ChurnError, match="did not finish within 5 s"):
        submit_run(kfp, package, {}, wait_seconds=5)

    class Finishing(StandInKfp):
        def __init__(self, state: str) -> None:
            super().__init__()
            self.final = state

        def wait_for_run_completion(self, run_id: str, timeout: int, sleep_duration: int = 5) -> Any:
            return SimpleNamespace(state=self.final)

    with pytest.raises(ChurnError, match="ended FAILED"):
        submit_run(Finishing("FAILED"), package, {}, wait_seconds=60)
    assert submit_run(Finishing("SUCCEEDED"), package, {}, wait_seconds=60)["state"] == "SUCCEEDED"
    with pytest.raises(ChurnError, match="compiled pipeline missing"):
        submit_run(kfp, COMPILED / "nope_pipeline.yaml", {})
