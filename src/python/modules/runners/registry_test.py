import pytest

from modules.runners.echo import EchoRunner
from modules.runners.registry import RUNNERS, UnknownRunner, get_runner
from modules.runners.stub import StubRunner


def test_the_stub_and_echo_runners_are_registered() -> None:
    assert RUNNERS.keys() == {"stub", "echo"}
    assert isinstance(get_runner("stub"), StubRunner)
    assert isinstance(get_runner("echo"), EchoRunner)


def test_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownRunner) as error:
        get_runner("diffusion")
    assert str(error.value) == "unknown runner 'diffusion' (known: echo, stub)"
    assert isinstance(error.value, KeyError)
