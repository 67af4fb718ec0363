import pytest

from modules.runners.registry import RUNNERS, UnknownRunner, get_runner
from modules.runners.stub import StubRunner


def test_the_stub_runner_is_registered() -> None:
    assert "stub" in RUNNERS
    assert isinstance(get_runner("stub"), StubRunner)


def test_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownRunner) as error:
        get_runner("diffusion")
    assert str(error.value) == "unknown runner 'diffusion' (known: stub)"
    assert isinstance(error.value, KeyError)
