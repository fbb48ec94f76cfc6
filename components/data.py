"""Data components: load (generate or ingest), validate, split."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def load_data(
    raw: Output[Dataset],
    source_uri: str = "",
    rows: int = 100_000,
    date: str = "",
    seed: int = 42,
    scenario: str = "none",
    engine: str = "pandas",
) -> str:
    """Generate a day's customers, or copy the export at ``source_uri``; return its fingerprint.

    On the ``dask`` engine the dataset is a folder of parquet parts, and every later step
    that reads it runs on a Dask cluster.
    """
    from churn.stages import data

    info = data.load_data(
        raw.path, source_uri=source_uri, rows=rows, date=date, seed=seed, scenario=scenario, engine=engine
    )
    raw.metadata.update(info)
    return str(info["fingerprint"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_data(raw: Input[Dataset], report: Output[Artifact], summary: Output[Markdown], min_rows: int = 100):
    """Validate the raw export against the schema; fail the run (after writing the report) when invalid."""
    from churn.stages import data

    data.validate(raw.path, report.path, summary=summary.path, min_rows=min_rows, source=raw.metadata.get("source"))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def split_data(
    raw: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    seed: int = 42,
):
    """Stratified, seeded 70/15/15 split into parquet datasets."""
    from churn.stages import data

    counts = data.split(raw.path, {"train": train.path, "validation": validation.path, "test": test.path}, seed=seed)
    for artifact, name in ((train, "train"), (validation, "validation"), (test, "test")):
        artifact.metadata["rows"] = counts[f"{name}_rows"]
