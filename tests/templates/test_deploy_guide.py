"""docs/deploy-gcp.md's commands, pasted as a user would: gcloud and bq accept every one.

Each bash block runs in order with the guide's own variables. gcloud and bq are the real
tools with an empty configuration: they parse their flags and read their local files, then
stop for want of an account, which is the one error allowed. imgclf, kubectl and curl need
a project or a cluster to do anything and are checked elsewhere (test_launch, test_gke).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy-gcp.md"

HARNESS = r"""
set +e
export CLOUDSDK_CONFIG="$WORK/gcloud" CLOUDSDK_CORE_DISABLE_PROMPTS=1
export CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1 CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=1
check() {  # runs a Google tool; anything but "no account" is the guide's mistake
  out=$(command "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && ! grep -q "do not currently have an active account" <<<"$out"; then
    printf 'REJECTED: %s\n%s\n' "$*" "$out" >> "$WORK/rejected"
  fi
  echo ran >> "$WORK/ran"
}
gcloud() { if [ "$1 $2" = "auth application-default" ]; then return 0; fi; check gcloud "$@"; }
bq() { check bq "$@"; }
imgclf() { :; }; kubectl() { :; }; curl() { :; }; open() { :; }
"""


def test_gcloud_and_bq_accept_every_command_in_the_guide(tmp_path):
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) >= 12
    script = tmp_path / "guide.sh"
    script.write_text(HARNESS + "\n".join(blocks))
    env = {**os.environ, "WORK": str(tmp_path), "HOME": str(tmp_path)}
    assert shutil.which("gcloud") and shutil.which("bq"), "the Google Cloud CLI runs these checks"
    subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, timeout=600, capture_output=True)
    rejected = (tmp_path / "rejected").read_text() if (tmp_path / "rejected").exists() else ""
    assert rejected == ""
    assert len((tmp_path / "ran").read_text().split()) >= 60, "the guide's commands did not all run"


@pytest.mark.parametrize("typo", ["--uniform-bucket-level-acess", "--enable-workload-identity-pool"])
def test_the_check_catches_a_misspelt_flag(tmp_path, typo):
    script = tmp_path / "typo.sh"
    script.write_text(HARNESS + f"gcloud storage buckets create gs://b {typo}\n")
    env = {**os.environ, "WORK": str(tmp_path), "HOME": str(tmp_path)}
    subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, timeout=120, capture_output=True)
    assert "unrecognized arguments" in (tmp_path / "rejected").read_text()
