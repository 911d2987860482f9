"""``imgclf dashboard`` builds Streamlit's command: safe defaults, the user's flags win, and no
open dashboard beyond loopback without sign-in."""

import pytest

from labeling_dashboard.launch import APP, streamlit_command
from labeling_dashboard.settings import DashboardSettings
from models.errors import NotAllowed


def test_defaults_are_loopback_headless_and_flags_pass_through():
    command = streamlit_command(["--server.port", "8502"], DashboardSettings())
    assert command[1:5] == ["-m", "streamlit", "run", APP]
    assert command[-2:] == ["--server.port", "8502"]
    assert "--server.address" in command and command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--browser.gatherUsageStats") + 1] == "false"


def test_a_flag_the_user_gives_replaces_the_default():
    command = streamlit_command(["--server.headless=false"], DashboardSettings())
    assert "--server.headless" not in command and "--server.headless=false" in command


def test_an_open_address_needs_sign_in_or_insecure():
    with pytest.raises(NotAllowed, match="no sign-in"):
        streamlit_command(["--server.address", "0.0.0.0"], DashboardSettings())
    assert "--insecure" not in streamlit_command(["--server.address", "0.0.0.0", "--insecure"], DashboardSettings())
    signed = DashboardSettings(trusted_user_header="X-Goog-Authenticated-User-Email")
    assert streamlit_command(["--server.address=0.0.0.0"], signed)[-1] == "--server.address=0.0.0.0"
