"""An operator's view of a rollout and their word on it (``churn rollout status | promote | abort``).

The word is an MLflow tag on the canary's version, ``rollout.override`` = ``promote`` or
``abort``: a running rollout polls it (:func:`overrule_hook`) and ends that way within a
poll, doing the traffic and ``@champion`` itself. When no rollout is running (the version's
``rollout.status`` is not ``progressing``), the command acts on the InferenceService
directly, and an abort moves ``@champion`` back as the gate's user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from churn.errors import ChurnError
from churn.rollout.controller import Overrule
from churn.rollout.decisions import TrafficSplit, TrafficState
from churn.rollout.record import OVERRIDE_TAG, REASON_TAG, STATUS_TAG, STEP_TAG, restore_champion, tag_version

log = logging.getLogger(__name__)
#: The tags ``status`` shows.
ROLLOUT_TAGS = (STATUS_TAG, STEP_TAG, REASON_TAG, OVERRIDE_TAG)


def version_tags(model_name: str, version: str) -> dict[str, str]:
    """A model version's ``rollout.*`` tags (MLflow connected already)."""
    from mlflow import MlflowClient  # heavy: only the commands that talk to MLflow load it

    tags = MlflowClient().get_model_version(model_name, version).tags
    return {key: str(tags[key]) for key in ROLLOUT_TAGS if key in tags}


def overrule_hook(model_name: str, version: str) -> Callable[[], Overrule]:
    """The ``overrule`` a running rollout polls: the version's ``rollout.override`` tag, if it says a word.

    MLflow out of reach is no word (logged): the analysis goes on deciding.
    """

    def word() -> Overrule:
        try:
            said = version_tags(model_name, version).get(OVERRIDE_TAG)
        except Exception as exc:  # a registry hiccup must not end a rollout
            log.warning("could not read %s on %s v%s: %s", OVERRIDE_TAG, model_name, version, exc)
            return None
        if said == "promote":
            return "promote"
        if said == "abort":
            return "abort"
        return None

    return word


@dataclass(frozen=True)
class RolloutView:
    """What ``churn rollout status`` shows: the version's tags and, in a cluster, the traffic."""

    model_name: str
    version: str
    tags: dict[str, str]
    traffic: TrafficState | None

    def lines(self) -> list[str]:
        """The view as lines for the console."""
        out = [f"{self.model_name} v{self.version}"]
        out += [f"  {key}: {self.tags[key]}" for key in ROLLOUT_TAGS if key in self.tags]
        if not self.tags:
            out.append("  no rollout recorded")
        if self.traffic is not None:
            t = self.traffic
            canary = f", canary v{t.canary_version} at {t.canary_percent}%" if t.canary_version else ", no canary"
            out.append(f"  traffic: stable v{t.stable_version}{canary}")
        return out


def rollout_version(model_name: str, version: str, traffic: TrafficSplit | None) -> str:
    """The version to look at: the one given, else the cluster's canary, else the latest version.

    Raises:
        ChurnError: The model has no versions.

    """
    if version:
        return version
    if traffic is not None:
        canary = traffic.state().canary_version
        if canary:
            return canary
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    if not versions:
        raise ChurnError(f"model {model_name} has no versions")
    return str(max(int(v.version) for v in versions))


def rollout_status(model_name: str, version: str = "", traffic: TrafficSplit | None = None) -> RolloutView:
    """The tags of the rollout's version and, given a traffic split, who serves what."""
    chosen = rollout_version(model_name, version, traffic)
    return RolloutView(model_name, chosen, version_tags(model_name, chosen), traffic.state() if traffic else None)


def overrule(
    model_name: str,
    word: Literal["promote", "abort"],
    *,
    version: str = "",
    traffic: TrafficSplit | None = None,
    identity: tuple[str | None, str | None] = (None, None),
) -> str:
    """Record the operator's word on the rollout; act on the traffic when no rollout is running.

    Returns:
        What was done, for the console.

    Raises:
        ChurnError: No rollout is running and there is no traffic split to act on.

    """
    chosen = rollout_version(model_name, version, traffic)
    tags = version_tags(model_name, chosen)
    tag_version(model_name, chosen, {OVERRIDE_TAG: word})
    if tags.get(STATUS_TAG) == "progressing":
        return f"{model_name} v{chosen}: the running rollout will {word} within a poll ({OVERRIDE_TAG}={word})"
    if traffic is None:
        raise ChurnError(
            f"{model_name} v{chosen} has no running rollout and there is no cluster to act on; recorded {word} only"
        )
    state = traffic.state()
    if state.canary_version != chosen:
        raise ChurnError(f"the InferenceService has no canary v{chosen} to {word} (it serves {state})")
    reason = f"an operator chose to {word} (no rollout was running)"
    if word == "promote":
        traffic.promote()
        tag_version(model_name, chosen, {STATUS_TAG: "promoted", REASON_TAG: reason})
        return f"{model_name} v{chosen}: promoted, all traffic on it"
    traffic.abort()
    moved = restore_champion(model_name, chosen, state.stable_version, identity=identity)
    tag_version(model_name, chosen, {STATUS_TAG: "rolled_back", REASON_TAG: reason})
    alias = f"; @champion back on v{state.stable_version}" if moved else ""
    return f"{model_name} v{chosen}: aborted, all traffic on v{state.stable_version}{alias}"
