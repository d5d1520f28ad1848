import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("env, expected", [({}, "True"), ({"SPEECHTOK_MALLOC": "system"}, "False")])
def test_tune_malloc_and_opt_out(env, expected):
    code = "from speechtok.runtime import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**env, "PATH": ""},
                         timeout=60)
    assert out.stdout.strip() == expected, out.stderr
