"""Template parameters and launches as data: checked against the pipelines' own parsers, and
the gcloud command and the REST request compared as two spellings of one launch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from beam_pipelines import flex_launch
from beam_pipelines.flex_templates import Launch, Project, Workers, build_commands, parameters
from models.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
L4 = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"


def _declared(template: str) -> set[str]:
    return {p["name"] for p in json.loads((ROOT / "templates" / template / "metadata.json").read_text())["parameters"]}


def test_parameters_are_text_with_lists_joined_and_unset_flags_left_out():
    got = parameters(
        "batch",
        {"input": "gs://b/in.csv", "top_k": 3, "model": None, "allowed_read_prefixes": ["gs://b/", "gs://c/"]},
    )
    assert got == {"input": "gs://b/in.csv", "top_k": "3", "allowed_read_prefixes": "gs://b/,gs://c/"}


@pytest.mark.parametrize("template", ["batch", "stream"])
def test_every_pipeline_flag_is_a_declared_parameter_and_others_are_refused(template):
    every = dict.fromkeys(_declared(template), "x")
    assert set(parameters(template, every)) == _declared(template)
    with pytest.raises(InvalidInput, match="not a parameter of the .* template: runner, temp_location"):
        parameters(template, {**every, "temp_location": "gs://b/tmp", "runner": "DirectRunner"})


def test_a_launch_says_the_same_thing_to_gcloud_and_to_the_rest_api():
    launch = Launch(
        template="stream",
        spec="gs://b/templates/imgclf-stream-gpu.json",
        job_name="imgclf-stream-1",
        project="p",
        region="europe-west1",
        parameters={"input_topic": "projects/p/topics/t", "allowed_read_prefixes": "gs://b/,gs://c/"},
        workers=Workers(gpu=True, max_workers=3),
        temp_location="gs://b/tmp",
        service_account="sa@p.iam.gserviceaccount.com",
        labels={"team": "vision"},
    )
    assert launch.gcloud() == [
        "gcloud",
        "dataflow",
        "flex-template",
        "run",
        "imgclf-stream-1",
        "--project=p",
        "--region=europe-west1",
        "--template-file-gcs-location=gs://b/templates/imgclf-stream-gpu.json",
        # a comma inside a value: gcloud's own escape, another delimiter between the pairs
        "--parameters=^~^input_topic=projects/p/topics/t~allowed_read_prefixes=gs://b/,gs://c/",
        "--temp-location=gs://b/tmp",
        "--worker-machine-type=g2-standard-4",
        "--max-workers=3",
        f"--additional-experiments={L4}",
        "--service-account-email=sa@p.iam.gserviceaccount.com",
        "--additional-user-labels=team=vision",
        "--enable-streaming-engine",
    ]
    assert launch.request() == {
        "launchParameter": {
            "jobName": "imgclf-stream-1",
            "containerSpecGcsPath": "gs://b/templates/imgclf-stream-gpu.json",
            "parameters": {"input_topic": "projects/p/topics/t", "allowed_read_prefixes": "gs://b/,gs://c/"},
            "environment": {
                "tempLocation": "gs://b/tmp",
                "machineType": "g2-standard-4",
                "maxWorkers": 3,
                "additionalExperiments": [L4],
                "serviceAccountEmail": "sa@p.iam.gserviceaccount.com",
                "additionalUserLabels": {"team": "vision"},
                "enableStreamingEngine": True,
            },
        }
    }


def test_cpu_batch_launches_leave_the_workers_to_dataflow():
    launch = Launch("batch", "gs://b/t.json", "j", "p", "r", {"input": "gs://b/in.csv"})
    assert launch.gcloud()[-1] == "--parameters=input=gs://b/in.csv"
    assert launch.request() == {
        "launchParameter": {
            "jobName": "j",
            "containerSpecGcsPath": "gs://b/t.json",
            "parameters": {"input": "gs://b/in.csv"},
        }
    }


def test_a_gpu_build_makes_one_image_and_both_templates_from_it():
    where = Project("p", "europe-west1", "b", tag="v1")
    image = "europe-west1-docker.pkg.dev/p/imgclf/pipeline-gpu:v1"
    submit, *specs = build_commands(where, gpu=True)
    assert submit == [
        "gcloud",
        "builds",
        "submit",
        "--project=p",
        "--region=europe-west1",
        "--config=templates/cloudbuild-pipeline.yaml",
        f"--substitutions=_IMAGE={image},_LOCK=gpu",
        ".",
    ]
    assert [spec[4] for spec in specs] == [
        "gs://b/templates/imgclf-batch-gpu.json",
        "gs://b/templates/imgclf-stream-gpu.json",
    ]
    for spec, template in zip(specs, ("batch", "stream"), strict=True):
        assert f"--image={image}" in spec and f"--metadata-file=templates/{template}/metadata.json" in spec


def test_the_app_build_tags_the_api_and_dashboard_images():
    (submit,) = build_commands(Project("p", "r", "b"), app=True)
    assert "--config=templates/cloudbuild-app.yaml" in submit
    assert (
        "--substitutions=_API_IMAGE=r-docker.pkg.dev/p/imgclf/api-cpu:latest,"
        "_DASHBOARD_IMAGE=r-docker.pkg.dev/p/imgclf/dashboard-cpu:latest,_LOCK=cpu"
    ) in submit


@pytest.mark.parametrize(
    ("argv", "pipeline"),
    [
        (["--input=gs://b/in.csv", "--model_root=gs://b/m"], "batch"),
        (["--input_subscription=projects/p/subscriptions/s"], "stream"),
        (["--input_topic", "projects/p/topics/t", "--output=gs://b/o/"], "stream"),
    ],
)
def test_the_launcher_picks_the_pipeline_by_its_parameters(argv, pipeline):
    assert flex_launch.pipeline_for(argv) == pipeline


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["--help"], "beam_pipelines.batch"),
        (["--input_topic=projects/p/topics/t", "--help"], "beam_pipelines.streaming"),
    ],
)
def test_the_launcher_runs_the_chosen_pipelines_own_entry_point(argv, prog, capsys):
    before = list(sys.argv)
    with pytest.raises(SystemExit) as exit_:
        flex_launch.main(argv)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {prog}")
    assert sys.argv == before, "Beam reads sys.argv in every PipelineOptions(); a --help left there breaks later runs"
