import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("env, expected", [({}, "True"), ({"SPEECHTOK_MALLOC": "system"}, "False")])
def test_tune_malloc_and_opt_out(env, expected):
    code = "from speechtok.runtime.memory import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, "PATH": ""},
                         timeout=60)
    assert out.stdout.strip() == expected, out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_free_memory_unmaps_what_tune_malloc_keeps():
    # tune_malloc keeps a freed 256 MiB block resident (no unmapping, no trimming); release_free_memory hands its
    # pages back, so that DataLoader workers forked next do not share them copy-on-write
    code = """
import numpy as np
from speechtok.runtime.memory import release_free_memory, tune_malloc
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
assert tune_malloc()
block = np.ones(256 << 18, np.float32); del block
kept = rss(); assert release_free_memory(); print(kept - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 200  # MiB handed back
