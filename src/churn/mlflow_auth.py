"""MLflow's built-in authentication, with least privilege for the aliases that deploy.

Two halves, one module (it imports nothing of churn's, so the MLflow image can load it):

- :func:`create_app` is the ``churn-auth`` server app (``mlflow server --app-name churn-auth``,
  registered under the ``mlflow.app`` entry point): MLflow's ``basic-auth`` app plus one rule.
  Plain basic-auth lets anyone with EDIT on a registered model set any of its aliases, and the
  training pipeline needs EDIT to register versions and move ``@challenger``. But ``@champion``
  is what the deploy step rolls out to production, so moving it takes MANAGE on the model
  (deleting an alias already does): the promotion gate's identity has MANAGE, the pipeline's
  only EDIT.
- :func:`ensure_identities` creates the users and their permissions, idempotently (``churn
  mlflow-auth setup``, run by the chart's Job as the admin): rerunning it with new passwords
  rotates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The alias only MANAGE may move (mirrors churn.registry.mlflow_registry.CHAMPION; this module imports no churn code).
PROTECTED_ALIAS = "champion"


def create_app(app: Any = None) -> Any:
    """The basic-auth app in which moving ``@champion`` takes MANAGE on the registered model."""
    from mlflow.server import app as mlflow_app
    from mlflow.server import auth

    validate_set_alias = auth.validate_can_set_model_or_prompt_version_alias

    def validate_can_set_alias() -> bool:
        if not validate_set_alias():
            return False
        if auth._get_request_param("alias") != PROTECTED_ALIAS:
            return True
        return bool(auth._get_permission_from_registered_model_or_prompt_name().can_manage)

    # The validators are looked up per request, by (path, method): replace the alias ones.
    for route, validator in list(auth.BEFORE_REQUEST_VALIDATORS.items()):
        if validator is validate_set_alias:
            auth.BEFORE_REQUEST_VALIDATORS[route] = validate_can_set_alias
    # `mlflow server` bootstraps the admin only for the app named "basic-auth": do it here.
    auth.get_flask_server_secret_key()
    auth.bootstrap_admin_user()
    return auth.create_app(app if app is not None else mlflow_app)


@dataclass(frozen=True)
class Identity:
    """An MLflow user of churn-mlops and what it may do with the experiment and the registered model."""

    role: str
    username: str
    password: str
    experiment_permission: str
    model_permission: str


#: MLflow's basic-auth refuses shorter passwords.
MIN_PASSWORD_LENGTH = 12

#: What each role may do: (experiment, registered model). READ sees runs and downloads models;
#: EDIT logs runs, registers versions and moves @challenger; MANAGE also moves @champion.
ROLE_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    "pipeline": ("EDIT", "EDIT"),
    "gate": ("EDIT", "MANAGE"),
    "reader": ("READ", "READ"),
}


def identities(usernames: Mapping[str, str], passwords: Mapping[str, str]) -> list[Identity]:
    """One :class:`Identity` per role of :data:`ROLE_PERMISSIONS`, from its username and password."""
    missing = [role for role in ROLE_PERMISSIONS if not passwords.get(role)]
    if missing:
        raise ValueError(f"no password for the MLflow role(s) {', '.join(missing)}")
    short = [role for role in ROLE_PERMISSIONS if len(passwords[role]) < MIN_PASSWORD_LENGTH]
    if short:
        raise ValueError(
            f"the password of the MLflow role(s) {', '.join(short)} is shorter than {MIN_PASSWORD_LENGTH} characters"
        )
    return [
        Identity(role, usernames.get(role) or f"churn-{role}", passwords[role], *perms)
        for role, perms in ROLE_PERMISSIONS.items()
    ]


def ensure_identities(
    tracking_uri: str,
    *,
    experiment: str,
    model_name: str,
    users: list[Identity],
    log: Callable[[str], None] = print,
) -> None:
    """Create (or update) every user and grant exactly its role's permissions; safe to rerun.

    Runs as the admin (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``). The experiment and the
    registered model are created here, by the admin, when missing: MLflow gives the creator of a
    registered model MANAGE on it, and the pipeline must not get that by registering first.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server.auth.client import AuthServiceClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    auth = AuthServiceClient(tracking_uri)
    for user in users:
        try:
            auth.create_user(user.username, user.password)
            verb = "created"
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            auth.update_user_password(user.username, user.password)
            verb = "updated"
        _grant(auth, user.username, "experiment", str(experiment_id), user.experiment_permission)
        _grant(auth, user.username, "registered_model", model_name, user.model_permission)
        log(
            f"MLflow user {user.username} ({user.role}) {verb}: {user.experiment_permission} on experiment "
            f"{experiment!r}, {user.model_permission} on registered model {model_name!r}"
        )


def _grant(auth: Any, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    """Grant ``permission``, replacing an earlier grant on the same resource (a grant never stacks)."""
    from mlflow.exceptions import RestException

    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)
    except RestException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)
        auth.grant_user_permission(username, resource_type, resource_id, permission)
