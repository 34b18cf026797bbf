"""The wheel carries what the package reads at run time besides Python: the
Lua scripts and the web UI's templates and static files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harrier.scheduler.ui.rendering import HERE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_ships_the_ui_templates_static_files_and_lua_scripts(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True, timeout=280)
    (wheel,) = tmp_path.glob("harrier-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"harrier/scheduler/ui/{p.parent.name}/{p.name}"
                for folder in ("templates", "static") for p in (HERE / folder).iterdir()}
    assert expected and expected <= names, sorted(expected - names)
    assert "harrier/common/lua/state_index.lua" in names
