"""The Dataflow Flex Templates: how they are built and launched, as data.

One image holds both pipelines (``templates/Dockerfile``, target ``pipeline``); each template is a
spec file on GCS naming that image and its own ``templates/<name>/metadata.json``.
``imgclf templates`` turns these values into ``gcloud`` commands and the API's Dataflow
job backend into a REST request, so a job launched either way gets the same parameters.
Parameters are the pipeline's own flags, checked against its own parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from models.errors import InvalidInput

TEMPLATES = ("batch", "stream")
GPU_MACHINE_TYPE = "g2-standard-4"  # one NVIDIA L4, 4 vCPUs, 16 GB
GPU_TYPE = "nvidia-l4"
# Pipeline options Dataflow accepts as parameters of any Flex Template, beside its metadata's.
DATAFLOW_PARAMETERS = frozenset({"sdk_container_image"})


def pipeline_parser(template: str) -> argparse.ArgumentParser:
    """The flags of the pipeline a template runs (its metadata declares exactly these)."""
    if template == "batch":
        from beam_pipelines.batch import argument_parser
    elif template == "stream":
        from beam_pipelines.streaming import argument_parser
    else:
        raise InvalidInput(f"no template named {template!r}; there are {', '.join(TEMPLATES)}")
    return argument_parser()


def parameter_names(template: str) -> set[str]:
    return {a.dest for a in pipeline_parser(template)._actions if a.option_strings and a.dest != "help"}


def parameters(template: str, flags: Mapping[str, object]) -> dict[str, str]:
    """Pipeline flags as the template's parameters: None dropped, lists comma-joined, all text.

    A name the pipeline does not know is refused here, not minutes later by Dataflow.
    """
    unknown = sorted(set(flags) - parameter_names(template) - DATAFLOW_PARAMETERS)
    if unknown:
        raise InvalidInput(f"not a parameter of the {template} template: {', '.join(unknown)}")
    return {name: _text(value) for name, value in flags.items() if value is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Workers:
    """How Dataflow sizes the workers; ``gpu`` alone gives an L4 on a g2-standard-4 each."""

    gpu: bool = False
    machine_type: str | None = None
    max_workers: int | None = None
    gpu_type: str = GPU_TYPE
    gpu_count: int = 1

    @property
    def machine(self) -> str | None:
        return self.machine_type or (GPU_MACHINE_TYPE if self.gpu else None)

    def experiments(self) -> list[str]:
        if not self.gpu:
            return []
        return [f"worker_accelerator=type:{self.gpu_type};count:{self.gpu_count};install-nvidia-driver"]


@dataclass(frozen=True)
class Project:
    """Where things live in the user's project; every name below derives from these."""

    project: str
    region: str
    bucket: str  # without gs://
    repository: str = "imgclf"  # Artifact Registry, Docker format
    tag: str = "latest"

    def image(self, gpu: bool = False, name: str = "pipeline") -> str:
        """``pipeline``, ``api`` or ``dashboard``; ``-cpu`` or ``-gpu`` by the lock file it was built from."""
        variant = "gpu" if gpu else "cpu"
        return f"{self.region}-docker.pkg.dev/{self.project}/{self.repository}/{name}-{variant}:{self.tag}"

    def spec(self, template: str, gpu: bool = False) -> str:
        return f"gs://{self.bucket}/templates/imgclf-{template}-{'gpu' if gpu else 'cpu'}.json"

    @property
    def temp_location(self) -> str:
        return f"gs://{self.bucket}/tmp"


def build_commands(where: Project, gpu: bool = False, app: bool = False) -> list[list[str]]:
    """Build and push the pipeline image with Cloud Build, then write both templates' specs;
    with ``app``, the API and dashboard images instead."""
    lock = "gpu" if gpu else "cpu"
    if app:
        images = f"_API_IMAGE={where.image(gpu, 'api')},_DASHBOARD_IMAGE={where.image(gpu, 'dashboard')}"
        return [_cloud_build(where, "templates/cloudbuild-app.yaml", f"{images},_LOCK={lock}")]
    image = where.image(gpu)
    commands = [_cloud_build(where, "templates/cloudbuild-pipeline.yaml", f"_IMAGE={image},_LOCK={lock}")]
    for template in TEMPLATES:
        commands.append(
            [
                "gcloud",
                "dataflow",
                "flex-template",
                "build",
                where.spec(template, gpu),
                f"--project={where.project}",
                f"--image={image}",
                "--sdk-language=PYTHON",
                f"--metadata-file=templates/{template}/metadata.json",
            ]
        )
    return commands


def _cloud_build(where: Project, config: str, substitutions: str) -> list[str]:
    return [
        "gcloud",
        "builds",
        "submit",
        f"--project={where.project}",
        f"--region={where.region}",
        f"--config={config}",
        f"--substitutions={substitutions}",
        ".",
    ]


@dataclass(frozen=True)
class Launch:
    """One template launch; ``gcloud()`` and ``request()`` are two spellings of the same launch."""

    template: str
    spec: str
    job_name: str
    project: str
    region: str
    parameters: dict[str, str]
    workers: Workers = Workers()
    temp_location: str | None = None
    service_account: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return self.template == "stream"

    def gcloud(self) -> list[str]:
        command = [
            "gcloud",
            "dataflow",
            "flex-template",
            "run",
            self.job_name,
            f"--project={self.project}",
            f"--region={self.region}",
            f"--template-file-gcs-location={self.spec}",
            f"--parameters={_gcloud_dict(self.parameters)}",
        ]
        if self.temp_location:
            command.append(f"--temp-location={self.temp_location}")
        if self.workers.machine:
            command.append(f"--worker-machine-type={self.workers.machine}")
        if self.workers.max_workers:
            command.append(f"--max-workers={self.workers.max_workers}")
        if self.workers.experiments():
            command.append(f"--additional-experiments={_gcloud_list(self.workers.experiments())}")
        if self.service_account:
            command.append(f"--service-account-email={self.service_account}")
        if self.labels:
            command.append(f"--additional-user-labels={_gcloud_dict(self.labels)}")
        if self.streaming:
            command.append("--enable-streaming-engine")
        return command

    def request(self) -> dict:
        """The body of Dataflow's ``projects.locations.flexTemplates.launch`` (v1b3)."""
        environment: dict[str, object] = {}
        if self.temp_location:
            environment["tempLocation"] = self.temp_location
        if self.workers.machine:
            environment["machineType"] = self.workers.machine
        if self.workers.max_workers:
            environment["maxWorkers"] = self.workers.max_workers
        if self.workers.experiments():
            environment["additionalExperiments"] = self.workers.experiments()
        if self.service_account:
            environment["serviceAccountEmail"] = self.service_account
        if self.labels:
            environment["additionalUserLabels"] = dict(self.labels)
        if self.streaming:
            environment["enableStreamingEngine"] = True
        body = {"jobName": self.job_name, "containerSpecGcsPath": self.spec, "parameters": dict(self.parameters)}
        if environment:
            body["environment"] = environment
        return {"launchParameter": body}


def _gcloud_list(values: Sequence[str]) -> str:
    """gcloud splits list flags at commas; a value holding one needs another delimiter (gcloud topic escaping)."""
    if not any("," in v for v in values):
        return ",".join(values)
    delimiter = next(d for d in "~#@!%" if not any(d in v for v in values))
    return f"^{delimiter}^" + delimiter.join(values)


def _gcloud_dict(values: Mapping[str, str]) -> str:
    return _gcloud_list([f"{k}={v}" for k, v in values.items()])
