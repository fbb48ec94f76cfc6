"""Training components: one model family per task, then evaluation and selection."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_model(
    family: str,
    train: Input[Dataset],
    validation: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    params_json: str = "",
    n_jobs: int = 2,
    seed: int = 42,
):
    """Fit the feature pipeline and one model family; log its validation metrics."""
    import json

    from churn.config import get_settings
    from churn.stages import training

    params = json.loads(params_json) if params_json else get_settings().training.params(family)
    info = training.train(family, train.path, validation.path, model.path, params=params, n_jobs=n_jobs, seed=seed)
    model.metadata.update({"family": family, "threshold": info["validation"]["threshold"]})
    for name, value in info["validation"].items():
        metrics.log_metric(f"val_{name}", float(value))
    metrics.log_metric("fit_seconds", float(info["fit_seconds"]))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select_model(
    logistic_regression: Input[Model],
    random_forest: Input[Model],
    xgboost: Input[Model],
    lightgbm: Input[Model],
    test: Input[Dataset],
    winner: Output[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    comparison: Output[Markdown],
) -> str:
    """Score every candidate on the test split, keep the best by validation ROC-AUC, report the comparison."""
    from churn.stages import markdown, training

    candidates = {
        "logistic_regression": logistic_regression.path,
        "random_forest": random_forest.path,
        "xgboost": xgboost.path,
        "lightgbm": lightgbm.path,
    }
    selection = training.select(candidates, test.path, winner.path)
    winner.metadata["family"] = selection["winner"]
    for name, value in selection["winner_test"].items():
        metrics.log_metric(f"test_{name}", float(value))
    curves = selection["curves"]
    roc.log_roc_curve(curves["fpr"], curves["tpr"], curves["thresholds"])
    roc.log_confusion_matrix(["retained", "churned"], curves["confusion_matrix"])
    markdown.write_text(comparison.path, markdown.comparison_markdown(selection))
    return str(selection["winner"])
