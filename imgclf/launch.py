"""``imgclf templates build|run``: build the pipeline image and Flex Templates, and launch them.

Thin: the commands come from ``beam_pipelines.flex_templates``, the same values the API's
Dataflow backend sends as a REST request. ``--dry-run`` prints them instead, one per line,
ready to paste. Where things live (project, region, bucket, Artifact Registry repository,
image tag) is one settings object, from flags or ``IMGCLF_GCP_*`` variables.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from beam_pipelines.flex_templates import (
    TEMPLATES,
    Launch,
    Project,
    Workers,
    build_commands,
    parameters,
    pipeline_parser,
)
from models.errors import InvalidInput, Unavailable


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGCLF_GCP_")

    project: str | None = None
    region: str = "us-central1"
    bucket: str | None = None
    repository: str = "imgclf"
    tag: str = "latest"
    service_account: str | None = None  # the workers' (docs/deploy-gcp.md creates imgclf-dataflow@)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser(
        "build", help="Build and push the pipeline image; write both templates' specs to GCS.", allow_abbrev=False
    )
    run = actions.add_parser(
        "run",
        allow_abbrev=False,
        help="Launch a template on Dataflow; the pipeline's own flags become its parameters.",
        description="Flags after the template are the pipeline's (python -m beam_pipelines.batch --help), "
        "passed as the template's parameters.",
    )
    run.add_argument("template", choices=TEMPLATES)
    for p in (build, run):
        p.add_argument("--project", help="Google Cloud project (IMGCLF_GCP_PROJECT).")
        p.add_argument("--region", help="Region of the jobs, bucket and registry (IMGCLF_GCP_REGION, us-central1).")
        p.add_argument("--bucket", help="Bucket for templates and temporary files, without gs:// (IMGCLF_GCP_BUCKET).")
        p.add_argument("--repository", help="Artifact Registry repository (IMGCLF_GCP_REPOSITORY, imgclf).")
        p.add_argument("--tag", help="Image tag (IMGCLF_GCP_TAG, latest).")
        p.add_argument("--gpu", action="store_true", help="The GPU image and template: one NVIDIA L4 per worker.")
        p.add_argument("--dry-run", action="store_true", help="Print the gcloud commands instead of running them.")
    build.add_argument("--app", action="store_true", help="Build the API and dashboard images instead.")
    run.add_argument("--job-name", help="Dataflow job name (default imgclf-TEMPLATE-UTCTIME).")
    run.add_argument("--machine-type", help="Worker machine type (default: Dataflow's; g2-standard-4 with --gpu).")
    run.add_argument("--max-workers", type=int, help="Autoscaling's ceiling.")
    run.add_argument("--service-account", help="Workers' service account e-mail (IMGCLF_GCP_SERVICE_ACCOUNT).")


def _project(args: argparse.Namespace) -> tuple[Project, CloudSettings]:
    overrides = {k: getattr(args, k, None) for k in ("project", "region", "bucket", "repository", "tag")}
    overrides["service_account"] = getattr(args, "service_account", None)
    settings = CloudSettings(**{k: v for k, v in overrides.items() if v is not None})
    missing = [name for name in ("project", "bucket") if not getattr(settings, name)]
    if missing:
        raise InvalidInput(f"no {' or '.join(missing)}: pass --{missing[0]} or set IMGCLF_GCP_{missing[0].upper()}")
    where = Project(settings.project, settings.region, settings.bucket, settings.repository, settings.tag)
    return where, settings


def template_flags(template: str, argv: list[str]) -> dict[str, str]:
    """The pipeline flags given on the command line, checked by the pipeline's own parser."""
    parser = pipeline_parser(template)
    parser.prog = f"imgclf templates run {template}"
    parser.allow_abbrev = False  # a parameter is named in full, as the template declares it
    for action in parser._actions:
        action.default = argparse.SUPPRESS  # only what was given becomes a parameter
    given, unknown = parser.parse_known_args(argv)
    if unknown:
        raise InvalidInput(f"not a parameter of the {template} template: {' '.join(unknown)}")
    flags = vars(given)
    if template == "stream" and not ({"input_subscription", "input_topic"} & set(flags)):
        raise InvalidInput("the stream template reads --input_subscription or --input_topic; neither was given")
    return flags


def launch(args: argparse.Namespace, pipeline_argv: list[str]) -> Launch:
    where, settings = _project(args)
    flags = {**template_flags(args.template, pipeline_argv), "sdk_container_image": where.image(args.gpu)}
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Launch(
        template=args.template,
        spec=where.spec(args.template, args.gpu),
        job_name=args.job_name or f"imgclf-{args.template}-{stamp}",
        project=where.project,
        region=where.region,
        parameters=parameters(args.template, flags),
        workers=Workers(gpu=args.gpu, machine_type=args.machine_type, max_workers=args.max_workers),
        temp_location=where.temp_location,
        service_account=settings.service_account,
    )


def commands(args: argparse.Namespace, pipeline_argv: list[str]) -> list[list[str]]:
    if args.action == "build":
        if pipeline_argv:
            raise InvalidInput(f"unrecognized arguments: {' '.join(pipeline_argv)}")
        return build_commands(_project(args)[0], gpu=args.gpu, app=args.app)
    return [launch(args, pipeline_argv).gcloud()]


def main(args: argparse.Namespace, pipeline_argv: list[str]) -> int:
    todo = commands(args, pipeline_argv)
    if args.dry_run:
        for command in todo:
            print(shlex.join(command))
        return 0
    if shutil.which("gcloud") is None:
        raise Unavailable("gcloud is not on PATH (the Google Cloud CLI); --dry-run prints the commands")
    if args.action == "build" and not Path("templates/Dockerfile").is_file():
        raise InvalidInput(
            "run `imgclf templates build` from the repository's root: it sends the source to Cloud Build"
        )
    for command in todo:
        print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
        done = subprocess.run(command)
        if done.returncode:
            raise Unavailable(f"{' '.join(command[:4])} failed with status {done.returncode}")
    return 0
