"""The images' lock files (``make lock``) agree with what ``make`` installs and pin every package by hash."""

import ast
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "templates" / "locks"
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)")


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if match := PIN.match(line):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def _entries(text: str) -> dict[str, list[str]]:
    """Each locked package with its hash options (a requirement spans its continuation lines)."""
    entries: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            entries[name] = []
        elif name and line.strip().startswith("--hash="):
            entries[name].append(line.strip().rstrip(" \\"))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"unexpected line in a lock file: {line!r}")
    return entries


def _install_requires() -> list[Requirement]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    requires = next(k.value for k in call.keywords if k.arg == "install_requires")
    return [Requirement(ast.literal_eval(e)) for e in requires.elts]


CONSTRAINTS = _pins((ROOT / "constraints.txt").read_text())


@pytest.mark.parametrize("lock", ["cpu.txt", "gpu.txt"])
def test_every_locked_package_has_sha256_hashes(lock):
    entries = _entries((LOCKS / lock).read_text())

    assert len(entries) > 150
    assert [name for name, hashes in entries.items() if not hashes] == []
    assert all(h.startswith("--hash=sha256:") for hashes in entries.values() for h in hashes)


@pytest.mark.parametrize("lock", ["cpu.txt", "gpu.txt"])
def test_the_locks_pin_what_constraints_txt_pins(lock):
    locked = _pins((LOCKS / lock).read_text())
    shared = set(locked) & set(CONSTRAINTS)

    assert {n: (locked[n], CONSTRAINTS[n]) for n in shared if locked[n] != CONSTRAINTS[n]} == {}
    # The CPU image installs nothing `make` does not; the GPU image adds only TensorFlow's CUDA wheels.
    extra = set(locked) - set(CONSTRAINTS)
    if lock == "cpu.txt":
        assert extra == set()
    else:
        assert extra and all(name.startswith("nvidia-") for name in extra), extra


@pytest.mark.parametrize("lock", ["cpu.txt", "gpu.txt"])
def test_every_requirement_of_setup_py_is_locked_within_its_range(lock):
    locked = _pins((LOCKS / lock).read_text())

    for requirement in _install_requires():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {lock}: run make lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"{lock} has {name}=={locked[name]}"


def test_setuptools_still_has_pkg_resources_which_tensorflow_hub_imports():
    """setuptools 82 removed pkg_resources; Beam's TF handler imports tensorflow_hub, which needs it.
    An image built with the newest setuptools could not start the pipeline (seen when building one)."""
    for lock in ("cpu.txt", "gpu.txt"):
        assert Version(_pins((LOCKS / lock).read_text())["setuptools"]) < Version("82"), lock
