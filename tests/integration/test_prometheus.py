"""The alert rules against the real thing: promtool, a Pushgateway and a Prometheus server.

The binaries are Debian's ``prometheus`` and ``prometheus-pushgateway`` packages; the
session fixture installs them with ``scripts/install_prometheus.sh`` when they are
missing (a fresh CI machine) and fails, never skips, when that does not work. Servers run
on 127.0.0.1 on free ports with temporary storage and are always stopped.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_helpers import server

from churn.data import generate_customers
from churn.errors import ChurnError
from churn.monitoring.checks import check_drift
from churn.monitoring.publish import alert_rules_path, push_report
from churn.monitoring.reference import ReferenceProfile, fit_reference
from churn.monitoring.report import DriftReport
from churn.monitoring.run import run_monitoring

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn-mlops"
RULES_TESTS = Path(__file__).parent / "prometheus" / "churn-alerts.test.yaml"


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_checks_the_rules_file(prometheus_bins: dict[str, str]) -> None:
    result = run([prometheus_bins["promtool"], "check", "rules", str(alert_rules_path())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 18 rules found" in result.stdout


def test_promtool_unit_tests_cover_every_alert(prometheus_bins: dict[str, str]) -> None:
    import yaml

    rules = yaml.safe_load(alert_rules_path().read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert len(alerts) == 18
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["runbook"], rule["alert"]
    cases = [case for test in yaml.safe_load(RULES_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    assert {c["alertname"] for c in cases if c["exp_alerts"]} == alerts, "an alert has no firing case"
    assert {c["alertname"] for c in cases if not c["exp_alerts"]} == alerts, "an alert has no not-firing case"
    result = run([prometheus_bins["promtool"], "test", "rules", str(RULES_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --------------------------------------------------------------------------- live servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pushgateway(prometheus_bins: dict[str, str], tmp_path: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{free_port()}"
    command = [prometheus_bins["prometheus-pushgateway"], f"--web.listen-address={url.removeprefix('http://')}"]
    with server(command, tmp_path / "pushgateway.log", f"{url}/-/ready"):
        yield url


@pytest.fixture
def prometheus(prometheus_bins: dict[str, str], pushgateway: str, tmp_path: Path) -> Iterator[str]:
    """A Prometheus server scraping the Pushgateway every second and evaluating the real rules file."""
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(alert_rules_path())],
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    command = [
        prometheus_bins["prometheus"],
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={address}",
    ]
    with server(command, tmp_path / "prometheus.log", f"http://{address}/-/ready"):
        yield f"http://{address}"


def api(prometheus: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{prometheus}/api/v1/{path}{query}", timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def wait_for(what: str, probe: Callable[[], Any], seconds: float = 40) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def alerts(prometheus: str, name: str) -> list[dict[str, Any]]:
    return [a for a in api(prometheus, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def value(prometheus: str, query: str) -> float | None:
    result = api(prometheus, "query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    generated = generate_customers(20_000, "2026-01-05", seed=21)
    return fit_reference(generated.frame, generated.true_probability, roc_auc=0.80)


def run_on(profile: ReferenceProfile, scenario: str) -> DriftReport:
    generated = generate_customers(3_000, "2026-01-06", seed=22, scenario=scenario)
    return check_drift(profile, generated.frame, generated.true_probability)


def test_a_drifted_run_raises_the_feature_drift_alert(
    profile: ReferenceProfile, pushgateway: str, prometheus: str, tmp_path: Path
) -> None:
    drifted = run_on(profile, "service_outage")
    assert set(drifted.flagged) == {"support_tickets_90d", "satisfaction_score"}
    push_report(drifted, pushgateway)

    assert wait_for("the verdict in Prometheus", lambda: value(prometheus, "churn_monitoring_verdict")) == 2.0
    raised = wait_for(
        "ChurnFeatureDrift pending or firing",
        lambda: [a for a in alerts(prometheus, "ChurnFeatureDrift") if a["state"] in {"pending", "firing"}],
    )
    assert {a["labels"]["feature"] for a in raised} <= set(drifted.flagged)
    assert all(a["labels"]["severity"] == "warning" and a["annotations"]["runbook"] for a in raised)
    assert value(prometheus, 'churn_feature_psi{feature="satisfaction_score"}') == pytest.approx(
        drifted.feature("satisfaction_score").psi
    )
    assert wait_for("ChurnRateShift", lambda: alerts(prometheus, "ChurnRateShift"))

    # A run on empty data fails, pushes the failure flag and keeps the last results: the failure alert fires.
    empty = generate_customers(10, "2026-01-07").frame.head(0)
    with pytest.raises(ChurnError, match="current data is empty"):
        run_monitoring(profile, empty, json_path=tmp_path / "drift.json", pushgateway_url=pushgateway)
    assert not (tmp_path / "drift.json").exists()
    failed = wait_for(
        "ChurnMonitoringFailed firing",
        lambda: [a for a in alerts(prometheus, "ChurnMonitoringFailed") if a["state"] == "firing"],
    )
    assert failed[0]["labels"]["severity"] == "warning"
    assert value(prometheus, "churn_monitoring_verdict") == 2.0

    # A clean run replaces the whole group: drift and failure alerts resolve.
    clean = generate_customers(3_000, "2026-01-07", seed=23)
    run = run_monitoring(
        profile, clean.frame, clean.true_probability, json_path=tmp_path / "drift.json", pushgateway_url=pushgateway
    )
    assert run.report.verdict == "ok" and run.pushed_to == pushgateway
    wait_for(
        "the drift and failure alerts to resolve",
        lambda: not alerts(prometheus, "ChurnFeatureDrift") and not alerts(prometheus, "ChurnMonitoringFailed"),
    )
    assert value(prometheus, "churn_monitoring_failed") == 0.0
    assert not alerts(prometheus, "ChurnMonitoringStale")


def test_a_concept_drift_cohort_raises_the_realized_performance_alert_and_the_drift_group_stays(
    profile: ReferenceProfile, pushgateway: str, prometheus: str
) -> None:
    """Realized performance of a concept-drift day (true probabilities of the old concept as the scores)."""
    import datetime as dt

    import pandas as pd

    from churn.monitoring.cohorts import evaluate_cohorts
    from churn.monitoring.publish import push_performance

    push_report(run_on(profile, "none"), pushgateway)
    frames = []
    for day, scenario in (("2026-01-06", "none"), ("2026-01-07", "concept_drift")):
        old = generate_customers(3_000, day, seed=30)  # the same customers, scored by the old rule
        new = generate_customers(3_000, day, seed=30, scenario=scenario)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": new.frame["customer_id"],
                    "scored_at": pd.Timestamp(day, tz="UTC"),
                    "churn_probability": old.true_probability,
                    "churn_label": (old.true_probability >= 0.5).astype("int8"),
                    "model_version": "1",
                    "date": dt.date.fromisoformat(day),
                    "churned": new.frame["churned"],
                }
            )
        )
    log = pd.concat(frames, ignore_index=True)
    report = evaluate_cohorts(
        log.drop(columns="churned"),
        log[["customer_id", "churned"]],
        as_of=dt.date(2026, 2, 10),
        threshold=0.5,
        reference_roc_auc=0.85,
        reference_roc_auc_standard_error=0.005,
        reference_cohorts=1,
    )
    assert report.levels == {"realized": "alert", "estimated": "ok", "labels": "ok"}
    push_performance(report, pushgateway)
    raised = wait_for(
        "ChurnRealizedPerformanceDrop pending or firing",
        lambda: [a for a in alerts(prometheus, "ChurnRealizedPerformanceDrop") if a["state"] in {"pending", "firing"}],
    )
    assert raised[0]["labels"]["severity"] == "critical"
    realized = value(prometheus, 'churn_performance_roc_auc{cohort="2026-01-07", kind="realized"}')
    assert realized == pytest.approx(report.cohorts[1].realized.roc_auc)  # type: ignore[union-attr]
    assert not alerts(prometheus, "ChurnEstimatedPerformanceDrop")
    assert value(prometheus, "churn_monitoring_verdict") == 0.0  # its own job: the drift group is untouched


def test_a_scoring_run_of_a_risky_base_raises_the_high_risk_alert_and_a_failed_run_the_failure_alert(
    pushgateway: str, prometheus: str, tmp_path: Path
) -> None:
    """Real scoring runs (a small model, the stored-decile rule) pushed as the scoring pipeline pushes them."""
    import numpy as np

    from churn.scoring.batch import Scorer, fit_risk_deciles, score_base
    from churn.scoring.publish import push_scoring
    from churn.stages.scoring import validate_base
    from churn.training import split_frame, train_family

    parts = split_frame(generate_customers(6_000, "2026-01-05", seed=31).frame, seed=3)
    model = train_family("logistic_regression", parts["train"], parts["validation"], {"max_iter": 500}, n_jobs=1)
    deciles = np.asarray(fit_risk_deciles(model.predict_proba(parts["train"])))
    scorer = Scorer(model, "churn-model", "3", deciles)
    day = generate_customers(3_000, "2026-01-06", seed=32)

    def run(frame: Any, name: str) -> dict[str, Any]:
        summary = score_base(iter([frame]), scorer, str(tmp_path / name))
        push_scoring(pushgateway, {**summary.stats(), "model_version": "3"})
        return summary.stats()

    ordinary = run(day.frame, "ordinary")
    assert 0.05 < ordinary["decile_counts"][9] / ordinary["rows"] < 0.15  # about the reference's 10%
    share = 'sum(churn_scoring_risk_decile_rows{decile="10"}) / sum(churn_scoring_risk_decile_rows)'
    assert wait_for("the scoring run in Prometheus", lambda: value(prometheus, share)) == pytest.approx(
        ordinary["decile_counts"][9] / ordinary["rows"]
    )
    assert not alerts(prometheus, "ChurnScoringHighRiskShare")

    # A base where the riskiest third of the customers is all that is left.
    risky = run(day.frame.iloc[np.argsort(-day.true_probability)[:1_000]], "risky")
    assert risky["decile_counts"][9] / risky["rows"] > 0.2
    raised = wait_for(
        "ChurnScoringHighRiskShare pending or firing",
        lambda: [a for a in alerts(prometheus, "ChurnScoringHighRiskShare") if a["state"] in {"pending", "firing"}],
    )
    assert raised[0]["labels"]["severity"] == "warning" and raised[0]["annotations"]["runbook"]

    # An invalid base fails validation: the step pushes the failure and keeps the last numbers.
    bad = tmp_path / "bad-base"
    bad.mkdir()
    day.frame.drop(columns=["customer_id"]).head(50).to_csv(bad / "part-00000.csv", index=False)
    with pytest.raises(ChurnError, match="invalid"):
        validate_base(bad, tmp_path / "report.json", pushgateway_url=pushgateway)
    failed = wait_for(
        "ChurnScoringFailed firing",
        lambda: [a for a in alerts(prometheus, "ChurnScoringFailed") if a["state"] == "firing"],
    )
    assert failed[0]["labels"]["job"] == "churn-scoring"
    assert value(prometheus, "churn_scoring_rows") == risky["rows"]

    # The next good run replaces the group: both alerts resolve; the run is fresh, not stale.
    run(day.frame, "ordinary-again")
    wait_for(
        "the scoring alerts to resolve",
        lambda: not alerts(prometheus, "ChurnScoringHighRiskShare") and not alerts(prometheus, "ChurnScoringFailed"),
    )
    assert value(prometheus, "churn_scoring_failed") == 0.0
    assert not alerts(prometheus, "ChurnScoringStale")


def test_a_rolled_back_rollout_raises_its_alert_and_shows_the_failed_check(pushgateway: str, prometheus: str) -> None:
    """The rollout's recorder pushes as the deploy step does: a step, then the rollback; then a promoted one."""
    from churn.rollout.decisions import CheckResult, RolloutResult, StepAnalysis, StepRecord
    from churn.rollout.record import PushgatewayMetrics

    recorder = PushgatewayMetrics(pushgateway, "churn-model")
    slow = CheckResult("latency_p95_ratio", 0.31, 0.1, 3.1, 1.5, False)
    step = StepRecord(1, 10, 0.0, 60.0, StepAnalysis("fail", (slow,), "latency_p95_ratio 3.1 > 1.5"))
    running = RolloutResult("churn-model", "5", "4", "progressing", "", (step,))
    recorder.step(running, step)
    assert wait_for("the rollout's step", lambda: value(prometheus, "churn_rollout_canary_percent")) == 10
    assert not alerts(prometheus, "ChurnRolloutRolledBack")
    recorder.finished(RolloutResult("churn-model", "5", "4", "rolled_back", "step 1 (10%): latency", (step,)))
    fired = wait_for(
        "ChurnRolloutRolledBack firing",
        lambda: [a for a in alerts(prometheus, "ChurnRolloutRolledBack") if a["state"] == "firing"],
    )
    assert fired[0]["labels"]["model_name"] == "churn-model"
    assert value(prometheus, 'churn_rollout_check_value{check="latency_p95_ratio"}') == pytest.approx(3.1)
    assert value(prometheus, 'churn_rollout_check_passed{check="latency_p95_ratio"}') == 0
    assert value(prometheus, "churn_rollout_canary_percent") == 0 and value(prometheus, "churn_rollout_status") == 2

    # The next rollout, promoted, replaces the group: the alert resolves.
    last = StepRecord(2, 100, 60.0, 60.0, None)
    recorder.finished(RolloutResult("churn-model", "6", "4", "promoted", "every check passed", (last,)))
    wait_for("ChurnRolloutRolledBack to resolve", lambda: not alerts(prometheus, "ChurnRolloutRolledBack"))
    assert value(prometheus, "churn_rollout_canary_percent") == 100
    assert value(prometheus, 'churn_rollout_info{canary="6"}') == 1


def test_a_pushgateway_with_basic_auth_takes_only_the_publishers_pushes(
    prometheus_bins: dict[str, str],
    profile: ReferenceProfile,
    helm: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real Pushgateway with the chart's basic auth: anonymous and wrong pushes refused, the publisher's taken.

    The web config (a bcrypt hash) and the user's Secret are the ones the chart generates.
    """
    import base64

    rendered = subprocess.run(
        [helm, "template", "churn", str(CHART), "--show-only", "templates/secrets.yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    secrets = {d["metadata"]["name"]: d["stringData"] for d in yaml.safe_load_all(rendered) if d}
    user, password = secrets["churn-pushgateway"]["username"], secrets["churn-pushgateway"]["password"]
    assert len(password) >= 32
    web = tmp_path / "web-config.yml"
    web.write_text(secrets["churn-pushgateway-web"]["web-config.yml"])
    address = f"127.0.0.1:{free_port()}"
    command = [
        prometheus_bins["prometheus-pushgateway"],
        f"--web.listen-address={address}",
        f"--web.config.file={web}",
    ]
    gateway = f"http://{address}"
    log = tmp_path / "pushgateway-auth.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the Pushgateway to listen", lambda: _answers(f"{gateway}/-/ready"), seconds=90)
        report = run_on(profile, "none")
        monkeypatch.delenv("CHURN_MONITORING__PUSHGATEWAY_USERNAME", raising=False)
        with pytest.raises(ChurnError, match=r"refused the push \(401\)"):
            push_report(report, gateway)  # anonymous
        monkeypatch.setenv("CHURN_MONITORING__PUSHGATEWAY_USERNAME", user)
        monkeypatch.setenv("CHURN_MONITORING__PUSHGATEWAY_PASSWORD", "not-the-password-" + password[:4])
        with pytest.raises(ChurnError, match=r"refused the push \(401\)") as refused:
            push_report(report, gateway)
        assert "not-the-password" not in str(refused.value)
        monkeypatch.setenv("CHURN_MONITORING__PUSHGATEWAY_PASSWORD", password)
        push_report(report, gateway)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(f"{gateway}/metrics", headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert "churn_monitoring_verdict" in response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(f"{gateway}/metrics", timeout=5)
        assert anonymous.value.code == 401
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _answers(url: str) -> bool:
    """Any HTTP answer (a 401 included): the server is up."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
