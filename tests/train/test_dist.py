"""DDP plumbing on real process groups. NCCL needs GPUs, so its half is the device choice, a pure
function; gloo runs here for real in two processes, through the same setup() and all_sum()."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from catdog.train.loop.dist import reduce_device

RANK_CODE = """
import json, sys
import torch.distributed as tdist
from catdog.train.loop import dist
info = dist.setup("cpu")
rank = info.rank
out = dist.all_sum(info, [1.5 * (rank + 1), 10.0 ** rank])
print(json.dumps({"rank": rank, "backend": tdist.get_backend(), "sum": out}))
dist.teardown(info)
"""


def test_the_all_reduce_tensor_follows_the_backend():
    # NCCL reduces CUDA tensors only: the tensor goes to the rank's own GPU, not cuda:0 nor the CPU
    assert reduce_device("nccl", torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert reduce_device("NCCL", torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert reduce_device("gloo", torch.device("cpu")) == torch.device("cpu")
    assert reduce_device("gloo", torch.device("cuda", 1)) == torch.device("cpu")  # gloo on a GPU box: CPU tensors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_sum_on_a_real_gloo_group():
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RANK_CODE], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for o in outs:
        assert o["backend"] == "gloo"
        assert o["sum"] == [1.5 + 3.0, 1.0 + 10.0]  # every rank gets the total, in float64
