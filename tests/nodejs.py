"""Run a reference JavaScript implementation (from the repo's node_modules) on JSON input."""

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JS = Path(__file__).resolve().parent / "js"


def node_available() -> bool:
    return shutil.which("node") is not None and (ROOT / "node_modules").is_dir()


def run_node(script: str, payload, timeout: float = 300):
    """Run tests/js/<script> with `payload` as JSON on stdin; return its stdout parsed as JSON."""
    proc = subprocess.run(
        ["node", str(JS / script)],
        input=json.dumps(payload).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"node {script} failed: {proc.stderr.decode()[-2000:]}")
    return json.loads(proc.stdout)
