"""The bundled tokenizer: OpenAI's cl100k_base exactly (its known encodings), loaded with nothing from the network,
and the mock provider's vocabulary one token a word."""

from __future__ import annotations

import subprocess
import sys

from interlock import tokenizer
from interlock.mockprovider.answers import _WORDS


def test_it_is_cl100k_base() -> None:
    encoding = tokenizer.encoding()
    assert encoding.encode_ordinary("hello world") == [15339, 1917]
    assert encoding.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert encoding.n_vocab == 100277
    assert tokenizer.count("") == 0
    text = "Grüße, 你好 🌍 and  spaces\n\ttabs"
    assert "".join(tokenizer.pieces(text)) == text
    assert len(tokenizer.pieces("The quick brown fox")) == tokenizer.count("The quick brown fox") == 4


def test_it_loads_without_the_network_or_tiktokens_cache(tmp_path) -> None:
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from interlock import tokenizer\n"
        "print(tokenizer.count('hello world'))\n"
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def test_the_mock_answers_one_token_a_word() -> None:
    for word in _WORDS:
        assert tokenizer.count(" " + word) == 1, word
        assert tokenizer.count(word.capitalize()) == 1, word
