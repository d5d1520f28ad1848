import pytest

from speechtok.eval.sets import EVAL_SETS, eval_set

from .conftest import DATA

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not there")


@needs_data
def test_fixed_evaluation_sets():
    ls, so = eval_set("LS-test", DATA), eval_set("SO-test", DATA)
    assert len(ls) == 100 and len({u.speaker for u in ls}) == 10
    assert len(so) == 400 and len({u.speaker for u in so}) == 20
    assert all(u.path.is_file() and u.path.suffix == ".flac" for u in ls + so)  # lossless references


def test_unknown_set():
    with pytest.raises(KeyError, match="LS-test"):
        eval_set("LS-other", DATA)
    assert set(EVAL_SETS) >= {"LS-test", "SO-test"}
