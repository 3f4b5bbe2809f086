"""A Ray started by the engine runs its daemons with Ray's bookkeeping off (QUIET_LOCAL_RAY), read
from the daemons' own environment, and a value the user set first is kept."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'slcolm-dspy[ray]')")

# Run in a fresh interpreter: Ray reads these when it is imported and can be started once per
# process (the engine tests keep their own Ray running in this one).
SCRIPT = r"""
import json, os
from pathlib import Path
from slcolm_dspy.program.ray_engine import QUIET_LOCAL_RAY, RayOptions, _require_ray, _start

ray = _require_ray(local=True)
_start(ray, RayOptions())
try:
    parents, names = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            names[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])

    def ours(pid):
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 1)
        return False

    raylets = [p for p, n in names.items() if n.endswith(b"raylet") and ours(p)]
    blob = Path(f"/proc/{raylets[0]}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in blob if b"=" in item)
    print(json.dumps({name: env.get(name) for name in QUIET_LOCAL_RAY}))
finally:
    ray.shutdown()
"""


def test_a_ray_started_here_runs_its_daemons_quiet_and_keeps_what_the_user_set():
    env = os.environ | {"RAY_event_stats": "1"}  # the user's own choice wins
    for name in ("RAY_task_events_report_interval_ms", "RAY_enable_metrics_collection"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_task_events_report_interval_ms": "0",
        "RAY_enable_metrics_collection": "0",
        "RAY_event_stats": "1",
    }
