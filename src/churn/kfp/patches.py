"""Patches to KFP's local runner, each for the duration of one run: its run folder's name, Docker containers.

``kfp`` is imported inside each function: it is heavy, and only a local run needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def own_run_folder(found: list[str]) -> Iterator[None]:
    """Record the folder name KFP gives this run (``<pipeline>-<timestamp>``) in ``found``.

    The local runner names the run's folder but does not return the name. Comparing the
    folders before and after the run picks another run's folder when two runs share the
    pipeline root (two terminals in one checkout), so the name is taken where it is made.
    """
    from kfp.local import executor_input_utils

    original = executor_input_utils.get_local_pipeline_resource_name

    def record(pipeline_name: str) -> str:
        name = str(original(pipeline_name))
        found.append(name)
        return name

    executor_input_utils.get_local_pipeline_resource_name = record
    try:
        yield
    finally:
        executor_input_utils.get_local_pipeline_resource_name = original


def run_container(client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any) -> int:
    """``kfp.local.docker_task_handler.run_docker_container``, but the container outlives its exit.

    KFP starts task containers with ``auto_remove=True`` and, when the container is gone
    before ``logs()`` or ``wait()`` read it, assumes exit code 0. Under podman's Docker API
    (4.3) the container is removed as it exits: the log stream comes back empty and a failed
    task is reported as SUCCESS. Here the container is kept until its logs are streamed and
    its exit code is read, then removed, so a non-zero exit fails the task. Images are not
    pulled explicitly (``containers.run`` pulls a missing one).
    """
    from kfp.local.docker_task_handler import add_latest_tag_if_not_present

    container = client.containers.run(
        image=add_latest_tag_if_not_present(image),
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **run_args,
    )
    try:
        for chunk in container.logs(stream=True, follow=True):
            print(chunk.decode(errors="replace"), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


@contextmanager
def containers_kept_until_read() -> Iterator[None]:
    """Run KFP's Docker tasks with :func:`run_container` for the run only.

    KFP picks a task handler by the runner's exact type, so a ``DockerRunner`` subclass would
    not be dispatched, and ``auto_remove`` cannot be overridden through its run arguments
    (KFP passes it itself). The module function that starts the container is the one seam.
    """
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original
