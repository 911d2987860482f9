"""``imgclf dashboard``: Streamlit's own ``run`` with safe defaults, any Streamlit flag passed through.

Defaults: loopback only, headless, no usage statistics (this machine may have no network).
With no sign-in configured the dashboard lets anyone label as an admin, so listening beyond
loopback then needs ``--insecure``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from labeling_dashboard.settings import DashboardSettings
from models.errors import NotAllowed
from models.locations import is_loopback

APP = str(Path(__file__).with_name("app.py"))
DEFAULTS = {
    "--server.address": "127.0.0.1",
    "--server.headless": "true",
    "--browser.gatherUsageStats": "false",
    "--client.toolbarMode": "minimal",
}


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def streamlit_command(args: list[str], settings: DashboardSettings) -> list[str]:
    """The ``streamlit run`` command line for ``imgclf dashboard ARGS``."""
    insecure = "--insecure" in args
    args = [a for a in args if a != "--insecure"]
    flags = [part for flag, value in DEFAULTS.items() if _flag_value(args, flag) is None for part in (flag, value)]
    address = _flag_value(args, "--server.address") or DEFAULTS["--server.address"]
    signed_in = bool(settings.dashboard_users or settings.trusted_user_header)
    if not is_loopback(address) and not signed_in and not insecure:
        raise NotAllowed(
            f"the dashboard would listen on {address} with no sign-in, letting anyone label as an admin; "
            "set IMGCLF_DASHBOARD_USERS or IMGCLF_TRUSTED_USER_HEADER, or pass --insecure"
        )
    return [sys.executable, "-m", "streamlit", "run", APP, *flags, *args]
