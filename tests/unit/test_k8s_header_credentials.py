"""What an HTTP header can carry (agent.k8s.header_credentials): the control characters aiohttp
and Go's net/http refuse are refused, tab, spaces and characters beyond ASCII (sent as UTF-8 by
both) are not; nothing is trimmed but a token file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.k8s.header_credentials import RefusedCredential, header_problem, read_token_file


@pytest.mark.parametrize("value", ["a\tb", " a b ", "jeton-é", "токен-€", "a\x80b", ""])
def test_what_a_header_carries_is_accepted(value: str) -> None:
    assert header_problem(value) is None


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("token\n", "ends with a line break"),
        ("token\r\n\n", "ends with a line break"),
        ("tok\nen", "holds a control character"),
        ("token\x00\n", "holds a control character"),
        ("\x1ftoken", "holds a control character"),
        ("token\x7f", "holds a control character"),
        ("token\ud800", "holds an unpaired surrogate"),
    ],
)
def test_what_a_header_cannot_carry_is_named_without_quoting_it(value: str, start: str) -> None:
    problem = header_problem(value)
    assert problem is not None and problem.startswith(start)
    assert "tok" not in problem


def test_a_token_file_that_is_not_utf8_is_refused_without_quoting_a_byte(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"token-\xff\xfe\n")
    with pytest.raises(RefusedCredential) as caught:
        read_token_file(path, "tokenFile x")
    assert str(caught.value) == "tokenFile x is not UTF-8 text"
