import pytest

from modules.observability.request_id import MAX_LENGTH, accept_or_new


@pytest.mark.parametrize(
    "supplied",
    [
        b"abc-123",
        b"0f8fad5b-d9cb-469f-a165-70867728950e",
        b"trace:span@edge+1=2",
        b"a" * MAX_LENGTH,
    ],
)
def test_sane_client_id_is_kept(supplied: bytes) -> None:
    assert accept_or_new(supplied) == supplied.decode()


@pytest.mark.parametrize(
    "hostile",
    [
        None,
        b"",
        b"a" * (MAX_LENGTH + 1),
        b"abc\r\nX-Injected: 1",
        b"abc\n",
        b"caf\xc3\xa9",
        b"with space",
        b'quote"d',
        b"<script>",
    ],
)
def test_missing_or_hostile_id_is_replaced(hostile: bytes | None) -> None:
    generated = accept_or_new(hostile)
    assert len(generated) == 32
    assert int(generated, 16) >= 0  # a hex UUID
    assert generated != accept_or_new(hostile)  # fresh each time
