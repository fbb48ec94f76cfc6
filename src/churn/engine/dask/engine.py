"""The Dask engine behind the :class:`churn.engine.Engine` seam: datasets are folders of parts, stages run on a cluster.

Each method is what the stage did on a folder of parts before the seam: a cluster is started
(:func:`churn.engine.dask.stages.engine_client`) only for the work that needs one, and a dataset
small enough for one process is read here instead (the same rows, without a cluster's start-up).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.data import dataset
from churn.data.schema import LABEL
from churn.engine.base import MonitoringRows, TestScorer
from churn.engine.dask import stages as dask_steps
from churn.errors import ChurnError
from churn.storage import Location

if TYPE_CHECKING:
    from churn.config import MonitoringSettings
    from churn.monitoring.reference import ReferenceProfile
    from churn.scoring.batch import ScoreSummary
    from churn.training.models import ChurnModel

#: Rows of the current increment the monitoring reports (Evidently) are drawn from.
MONITORING_SAMPLE_ROWS = 20_000


class DaskEngine:
    """Folders of ``part-*.parquet`` (or pointers to them on S3), worked partition by partition."""

    name = "dask"
    partitioned = True

    def generate(self, out: Path, *, rows: int, date: str, seed: int, scenario: str, churn_rate: float) -> None:
        """Generate on this process in bounded memory, then move into place or upload for remote workers."""
        from churn.data import iter_customer_blocks
        from churn.data.partitioned import write_partitioned

        local = out.with_name(f".{out.name}.generated")
        blocks = iter_customer_blocks(rows, date or None, seed=seed, scenario=scenario, churn_rate=churn_rate)
        dataset.publish_local(write_partitioned((b.frame for b in blocks), local), out)

    def ingest(self, source_uri: str, out: Path) -> None:
        """Copy a parquet folder, file or ``s3://`` prefix as the dataset ``out``."""
        dask_steps.ingest(source_uri, out)

    def load_increment(self, uri: str, out: Path) -> None:
        """Copy the increment's parts (or its parquet file) as the dataset ``out``."""
        dask_steps.ingest(uri, out)

    def fingerprint(self, path: str | Path) -> tuple[str, int]:
        """Over the parts' names and bytes (or S3 ETags)."""
        return dataset.fingerprint(path)

    def validate(
        self,
        raw: str | Path,
        report: str | Path,
        *,
        summary: str | Path | None = None,
        min_rows: int = 100,
        max_examples: int = 5,
        source: str | None = None,
    ) -> Any:
        """The declared rules per partition and the global ones across partitions, on a cluster."""
        from churn.engine.dask.validation import validate_and_report_dask

        return validate_and_report_dask(
            raw, report, summary_path=summary, min_rows=min_rows, max_examples=max_examples, source=source
        )

    def split(
        self, raw: str | Path, outputs: dict[str, str | Path], *, seed: int, validation_size: float, test_size: float
    ) -> dict[str, int]:
        """Split into folders on a cluster (the same rows as the pandas engine's hash split)."""
        with dask_steps.engine_client(name="churn-split"):
            return dask_steps.split(raw, outputs, seed=seed, validation_size=validation_size, test_size=test_size)

    def read(self, path: str | Path) -> pd.DataFrame:
        """The dataset's parts (in its folder, or the S3 prefix it points at) read whole."""
        frame: pd.DataFrame = dataset.arrow_dataset(path).to_table().to_pandas(date_as_object=False)
        return frame

    def train(
        self,
        family: str,
        train_path: str | Path,
        validation_path: str | Path,
        *,
        params: dict[str, Any],
        n_jobs: int,
        seed: int,
    ) -> ChurnModel:
        """Boosters on a cluster, the other families on a seeded sample here (see :func:`dask_steps.train`)."""
        from churn.engine.dask.training import DASK_FAMILIES

        # The sampled families fit a seeded sample here: no cluster to start for them.
        cluster = (
            dask_steps.engine_client(name=f"churn-train-{family.replace('_', '-')}")
            if family in DASK_FAMILIES
            else nullcontext()
        )
        with cluster as client:
            return dask_steps.train(
                family, client, train_path, validation_path, params=params, n_jobs=n_jobs, seed=seed
            )

    @contextmanager
    def test_scorer(self, test_path: str | Path) -> Iterator[TestScorer]:
        """Partition by partition on a cluster, or read here when it fits one process."""
        if not dask_steps.fits_in_process(test_path):
            with dask_steps.engine_client(name="churn-evaluate"):
                yield dask_steps.scorer(test_path)
            return
        test = self.read(test_path)
        yield test[LABEL].to_numpy(dtype="int64"), lambda model: model.predict_proba(test)

    def example_and_labels(self, test_path: str | Path) -> tuple[pd.DataFrame, pd.Series]:
        """The first five rows and the label column, read from the parts without a cluster."""
        return dask_steps.head(test_path, 5).drop(columns=[LABEL]), dask_steps.label_column(test_path)

    def reference_rows(self, train_path: str | Path) -> pd.DataFrame:
        """A seeded bounded sample (:data:`dask_steps.SINGLE_NODE_SAMPLE_ROWS`), or the whole split when it fits."""
        if not dask_steps.fits_in_process(train_path):
            return dask_steps.sample(train_path)
        return self.read(train_path)

    @contextmanager
    def monitoring_rows(
        self, raw: str | Path, profile: ReferenceProfile, model: ChurnModel, settings: MonitoringSettings
    ) -> Iterator[MonitoringRows]:
        """Every row counted per partition on a cluster; Evidently's report draws from a bounded seeded sample."""
        from churn.engine.dask.frames import read_raw, typed
        from churn.engine.dask.monitoring import check_drift_dask

        with dask_steps.engine_client(name="churn-monitor"):
            current = typed(read_raw(raw))
            shown = dask_steps.sample(raw, MONITORING_SAMPLE_ROWS)
            yield shown, lambda: check_drift_dask(profile, current, model, settings=settings)[0]

    def score_base(
        self,
        base_dir: str | Path,
        table_dir: str,
        *,
        model_dir: Path,
        model_name: str,
        model_version: str,
        reasons: bool,
        method: str,
        part_rows: int,
        source_uri: str = "",
    ) -> ScoreSummary:
        """Score the parts on a cluster: read from ``source_uri`` when it is on S3 (every worker reads it).

        Raises:
            ChurnError: On Kubernetes with a local base (its workers cannot read it), or a base of CSV files.

        """
        from churn.config import get_settings
        from churn.engine.dask.cluster import in_kubernetes
        from churn.engine.dask.scoring import score_source_dask
        from churn.scoring.batch import base_parts

        settings = get_settings()
        on_s3 = Location.parse(source_uri).is_s3
        source = source_uri if on_s3 else str(base_dir)
        if settings.dask.kubernetes and in_kubernetes() and not on_s3:
            raise ChurnError(
                f"the Dask engine on Kubernetes scores a base on S3 (its workers cannot read this pod's {source}); "
                "give the scoring pipeline an s3:// source_uri"
            )
        if any(p.suffix.lower() == ".csv" for p in base_parts(base_dir)):
            raise ChurnError("the Dask engine scores parquet parts; this base holds CSV files (score it with pandas)")
        return score_source_dask(
            source,
            table_dir,
            model_dir=model_dir,
            model_name=model_name,
            model_version=model_version,
            reasons=reasons,
            validate=False,  # the validate step checked every part
            part_rows=settings.scoring.part_rows,
            method=method,
            settings=settings.dask,
        )

    def score_source(self, source: str, location: str, **common: Any) -> ScoreSummary:
        """:func:`churn.engine.dask.scoring.score_source_dask` on the configured cluster."""
        from churn.config import get_settings
        from churn.engine.dask.scoring import score_source_dask

        return score_source_dask(source, location, settings=get_settings().dask, **common)
