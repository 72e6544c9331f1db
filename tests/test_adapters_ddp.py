"""DDP: two CPU processes (gloo) train a QuIC model and end with identical adapter parameters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("ddp_quic_train.py")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_ddp_two_ranks_agree():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    # --standalone: a local rendezvous on a free port, so parallel test runs do not collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers: our own process group
        out, err = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{out}\n{err[-4000:]}")
    assert proc.returncode == 0, f"torchrun failed:\n{out}\n{err[-4000:]}"
    assert "DDP_OK world=2" in out
