"""templates/Dockerfile, checked without a Docker engine: hadolint, the files it copies, and what
each target must be (the pipeline image Dataflow's worker and launcher; the app images non-root)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "templates" / "Dockerfile"
LOCKS = ("cpu", "gpu")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    for keyword, rest in _instructions():
        if keyword == "FROM":
            name = rest.split(" AS ")[-1]
            stages[name] = []
        if stages:
            stages[name].append((keyword, rest))
    return stages


def _text(stage: list[tuple[str, str]]) -> str:
    return "\n".join(f"{keyword} {rest}" for keyword, rest in stage)


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([hadolint, "--failure-threshold", "style", DOCKERFILE], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("lock", LOCKS)
def test_every_file_copied_from_the_build_context_exists(lock):
    copied = 0
    for keyword, rest in _instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            path = ROOT / source.replace("${LOCK}", lock)
            assert path.exists(), f"templates/Dockerfile copies {source}, which is not in the repository"
            copied += 1
    assert copied >= 8


def test_one_builder_installs_the_hashed_lock_then_the_project_alone_and_checks_it():
    builder = _text(_stages()["builder"])
    assert "ARG LOCK=cpu" in builder and "COPY templates/locks/${LOCK}.txt /tmp/requirements.txt" in builder
    assert re.search(r"pip install [^\n]*--require-hashes[^\n]*-r /tmp/requirements.txt", builder)
    assert re.search(r"pip install [^\n]*--no-deps[^\n]* \.", builder) and "pip check" in builder
    setup_packages = re.search(r"PACKAGES = \[(.*?)\]", (ROOT / "setup.py").read_text())[1]
    for package in re.findall(r'"(\w+)"', setup_packages):
        assert f"COPY {package} ./{package}" in builder, f"{package} is not copied into the image"


def test_final_stages_carry_the_builders_virtualenv_and_no_build_tools():
    stages = _stages()
    assert set(stages) == {"beam", "launcher", "builder", "pipeline", "base", "api", "dashboard"}
    for name in ("pipeline", "base", "api", "dashboard"):
        text = _text(stages[name])
        assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get install|pip install)\b", text), name
    for name in ("pipeline", "base"):  # api and dashboard start from base
        assert "COPY --from=builder /opt/venv /opt/venv" in _text(stages[name]), name


def _beam_version() -> str:
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    return pins["apache-beam"]


def test_the_pipeline_target_is_dataflows_worker_and_template_launcher():
    stages = _stages()
    assert stages["beam"][0][1] == f"apache/beam_python3.11_sdk:{_beam_version()} AS beam", "must match our Beam"
    assert stages["launcher"][0][1].startswith("gcr.io/dataflow-templates-base/python311-template-launcher-base:")
    pipeline = dict(stages["pipeline"])
    assert pipeline["ENTRYPOINT"] == '["/opt/apache/beam/boot"]'
    assert "USER" not in pipeline, "Dataflow runs the SDK harness and launcher as root"
    text = _text(stages["pipeline"])
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in text
    assert "COPY beam_pipelines/flex_launch.py /template/flex_launch.py" in text
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/flex_launch.py" in text
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in text


def test_the_app_targets_share_a_base_and_run_as_a_numeric_non_root_user():
    stages = _stages()
    assert dict(stages["base"]).get("USER") == "10001:10001"
    for target in ("api", "dashboard"):
        assert stages[target][0] == ("FROM", f"base AS {target}")
        assert all(keyword != "USER" for keyword, _ in stages[target][1:]), "the base's user stays"
    assert "imgclf serve" in dict(stages["api"])["CMD"]
    assert '"imgclf", "dashboard"' in dict(stages["dashboard"])["CMD"]


@pytest.mark.parametrize(("config", "targets"), [("pipeline", ["pipeline"]), ("app", ["api", "dashboard"])])
def test_cloud_build_configs_build_their_targets_with_the_lock_and_push_every_image(config, targets):
    build = yaml.safe_load((ROOT / "templates" / f"cloudbuild-{config}.yaml").read_text())
    tags, built = [], []
    for step in build["steps"]:
        args = step["args"]
        assert step["name"] == "gcr.io/cloud-builders/docker" and args[0] == "build" and args[-1] == "."
        assert "--file=templates/Dockerfile" in args and "--build-arg=LOCK=${_LOCK}" in args
        built += [a.removeprefix("--target=") for a in args if a.startswith("--target=")]
        tags += [a.removeprefix("--tag=") for a in args if a.startswith("--tag=")]
    assert built == targets and sorted(build["images"]) == sorted(tags)
    assert set(targets) <= set(_stages())


def test_build_context_leaves_out_virtualenvs_and_data():
    for ignore in (".dockerignore", ".gcloudignore"):
        entries = (ROOT / ignore).read_text().split()
        assert {".venv", "var", ".git"} <= set(entries), ignore
