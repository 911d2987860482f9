"""`imgclf templates build|run --dry-run`: the exact gcloud commands, and gcloud itself accepts them.

gcloud parses its flags, reads the metadata files and checks a Cloud Build config's schema
before it asks for an account; with an empty configuration it stops at that point. So each
printed command is run for real, and the only error allowed is the missing account.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from imgclf.cli import main

ROOT = Path(__file__).resolve().parents[2]
CLOUD = ["--project=p", "--region=europe-west1", "--bucket=b", "--tag=v1"]
L4 = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"


def _dry_run(capsys, *argv: str) -> list[list[str]]:
    assert main(["templates", *argv, *CLOUD, "--dry-run"]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def _gcloud_accepts(command: list[str], config_dir: Path) -> None:
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config_dir),  # no account, no project: nothing can reach Google
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
    }
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "do not currently have an active account" in done.stderr, (
        f"{shlex.join(command)}\n{done.stderr}"
    )


def test_run_batch_on_gpus_passes_the_pipeline_flags_as_parameters(capsys):
    (command,) = _dry_run(
        capsys,
        "run",
        "batch",
        "--gpu",
        "--job-name=nightly",
        "--max-workers=5",
        "--input=gs://b/batch/in/images.csv",
        "--output",
        "gs://b/batch/out/p.jsonl",
        "--model_root=gs://b/models",
        "--allowed_read_prefixes=gs://b/batch/in/,gs://b/images/",
    )
    image = "europe-west1-docker.pkg.dev/p/imgclf/pipeline-gpu:v1"
    assert command == [
        "gcloud",
        "dataflow",
        "flex-template",
        "run",
        "nightly",
        "--project=p",
        "--region=europe-west1",
        "--template-file-gcs-location=gs://b/templates/imgclf-batch-gpu.json",
        "--parameters=^~^input=gs://b/batch/in/images.csv~output=gs://b/batch/out/p.jsonl~model_root=gs://b/models"
        f"~allowed_read_prefixes=gs://b/batch/in/,gs://b/images/~sdk_container_image={image}",
        "--temp-location=gs://b/tmp",
        "--worker-machine-type=g2-standard-4",
        "--max-workers=5",
        f"--additional-experiments={L4}",
    ]


def test_run_stream_on_cpus_uses_streaming_engine_and_the_cpu_image(capsys):
    (command,) = _dry_run(capsys, "run", "stream", "--input_topic=projects/p/topics/in", "--model_root=gs://b/m")
    assert command[4].startswith("imgclf-stream-")
    assert "--template-file-gcs-location=gs://b/templates/imgclf-stream-cpu.json" in command
    assert command[-1] == "--enable-streaming-engine"
    assert not any(arg.startswith(("--worker-machine-type", "--additional-experiments")) for arg in command)
    assert "sdk_container_image=europe-west1-docker.pkg.dev/p/imgclf/pipeline-cpu:v1" in command[8]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "batch", "--input=gs://b/in.csv", "--temp_location=gs://b/t"], "not a parameter of the batch"),
        (["run", "stream", "--model_root=gs://b/m"], "--input_subscription or --input_topic"),
    ],
)
def test_flags_the_template_cannot_take_are_refused_before_gcloud_runs(argv, message, capsys):
    assert main(["templates", *argv, *CLOUD, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_a_project_and_bucket_are_required_and_may_come_from_the_environment(capsys, monkeypatch):
    assert main(["templates", "build", "--dry-run"]) == 2
    assert "pass --project or set IMGCLF_GCP_PROJECT" in capsys.readouterr().err
    monkeypatch.setenv("IMGCLF_GCP_PROJECT", "envproj")
    monkeypatch.setenv("IMGCLF_GCP_BUCKET", "envbucket")
    assert main(["templates", "build", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--project=envproj" in out and "gs://envbucket/templates/imgclf-batch-cpu.json" in out


def test_gcloud_accepts_every_command_it_would_be_given(capsys, tmp_path):
    commands = [
        *_dry_run(capsys, "build", "--gpu"),
        *_dry_run(capsys, "build", "--app"),
        *_dry_run(capsys, "run", "batch", "--gpu", "--input=gs://b/in.csv", "--model_root=gs://b/m"),
        *_dry_run(
            capsys, "run", "stream", "--input_subscription=projects/p/subscriptions/s", "--output_files=gs://b/o/"
        ),
    ]
    assert len(commands) == 6  # 3 to build the pipeline image and templates, 1 the app images, 2 launches
    for command in commands:
        _gcloud_accepts(command, tmp_path)
