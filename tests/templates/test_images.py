"""The Dockerfiles, checked without a Docker engine: hadolint, the files they copy, and what
each image must be (the pipeline image Dataflow's worker and launcher; the app images non-root)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "templates" / "pipeline" / "Dockerfile"
APP = ROOT / "templates" / "app" / "Dockerfile"
DOCKERFILES = [PIPELINE, APP]
LOCKS = ("cpu", "gpu")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(dockerfile):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _beam_version() -> str:
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    return pins["apache-beam"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("lock", LOCKS)
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_file_copied_from_the_build_context_exists(dockerfile, lock):
    copied = 0
    for keyword, rest in _instructions(dockerfile):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            path = ROOT / source.replace("${LOCK}", lock)
            assert path.exists(), f"{dockerfile.relative_to(ROOT)} copies {source}, which is not in the repository"
            assert not any(part in (".venv", "var") for part in path.parts), source
            copied += 1
    assert copied >= 7


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_install_the_hashed_lock_then_the_project_alone_and_check_it(dockerfile):
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    assert "COPY templates/locks/${LOCK}.txt" in text and "ARG LOCK=cpu" in text
    assert re.search(r"pip install [^\n]*--require-hashes[^\n]*-r /tmp/requirements.txt", text)
    assert re.search(r"pip install [^\n]*--no-deps[^\n]* \.", text) and "pip check" in text
    setup_packages = re.search(r"PACKAGES = \[(.*?)\]", (ROOT / "setup.py").read_text())[1]
    for package in re.findall(r'"(\w+)"', setup_packages):
        assert f"COPY {package} ./{package}" in text, f"{package} is not copied into the image"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_final_stages_carry_no_build_tools_or_sources(dockerfile):
    for stage in _stages(dockerfile):
        name = stage[0][1].split(" AS ")[-1] if " AS " in stage[0][1] else "final"
        if name in ("builder", "beam", "launcher"):
            continue
        text = " ".join(f"{keyword} {rest}" for keyword, rest in stage)
        assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get install|pip install)\b", text), name
        if name in ("base", "final"):  # the others start from base
            assert "COPY --from=builder /opt/venv /opt/venv" in text, name


def test_pipeline_image_is_dataflows_worker_and_template_launcher():
    stages = _stages(PIPELINE)
    sources = [stage[0][1] for stage in stages]
    assert f"apache/beam_python3.11_sdk:{_beam_version()} AS beam" in sources, "the SDK image must match our Beam"
    assert any(s.startswith("gcr.io/dataflow-templates-base/python311-template-launcher-base:") for s in sources)
    final = dict((k, r) for k, r in stages[-1] if k in ("ENTRYPOINT", "USER"))
    assert final["ENTRYPOINT"] == '["/opt/apache/beam/boot"]'
    assert "USER" not in final, "Dataflow runs the SDK harness and launcher as root"
    text = PIPELINE.read_text()
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in text
    assert "COPY beam_pipelines/flex_launch.py /template/flex_launch.py" in text
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/flex_launch.py" in text
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in text.replace("No FLEX_TEMPLATE_PYTHON_SETUP_FILE", "")


def test_app_images_share_a_base_and_run_as_a_numeric_non_root_user():
    stages = {stage[0][1].split(" AS ")[-1]: stage for stage in _stages(APP)}
    assert set(stages) == {"builder", "base", "api", "dashboard"}
    assert dict(stages["base"]).get("USER") == "10001:10001"
    for target in ("api", "dashboard"):
        assert stages[target][0] == ("FROM", f"base AS {target}")
        assert all(keyword != "USER" for keyword, _ in stages[target][1:]), "the base's user stays"
    assert "imgclf serve" in dict(stages["api"])["CMD"]
    assert '"imgclf", "dashboard"' in dict(stages["dashboard"])["CMD"]


@pytest.mark.parametrize("config", ["pipeline", "app"])
def test_cloud_build_configs_build_their_dockerfile_with_the_lock_and_push_every_image(config):
    build = yaml.safe_load((ROOT / "templates" / config / "cloudbuild.yaml").read_text())
    tags = []
    for step in build["steps"]:
        assert step["name"] == "gcr.io/cloud-builders/docker" and step["args"][0] == "build"
        assert f"--file=templates/{config}/Dockerfile" in step["args"] and "--build-arg=LOCK=${_LOCK}" in step["args"]
        assert step["args"][-1] == "."
        tags += [a.removeprefix("--tag=") for a in step["args"] if a.startswith("--tag=")]
    assert sorted(build["images"]) == sorted(tags)


def test_build_context_leaves_out_virtualenvs_and_data():
    for ignore in (".dockerignore", ".gcloudignore"):
        entries = (ROOT / ignore).read_text().split()
        assert {".venv", "var", ".git"} <= set(entries), ignore
