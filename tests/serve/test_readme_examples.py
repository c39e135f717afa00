"""The README's serving example runs against a real server, so the docs cannot rot."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from tests.serve.conftest import Server

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_curl_example_is_answered(server: Server) -> None:
    text = README.read_text()
    match = re.search(r"curl -s localhost:8080(\S+) .*? -d '(.*?)'\n```", text, re.DOTALL)
    assert match, "the README lost its curl example"
    path, payload = match.group(1), match.group(2)
    request = urllib.request.Request(
        server.url + path, data=payload.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = json.loads(resp.read())
    assert answer["predictions"][0] in (0, 1)
    assert len(answer["probabilities"][0]) == 2
