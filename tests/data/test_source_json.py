"""`SourceStream.texts()` parses JSON lines with orjson where installed, and gives exactly what `json` gives."""

from __future__ import annotations

import json

import pytest

from nemotron.data.sources import BlendConfig, read_source

pytestmark = pytest.mark.unit

LINES = [
    '{"text": "plain"}',
    '{"text": "nan elsewhere", "score": NaN}',  # orjson refuses NaN: json parses the line
    '{"text": "lone \\ud800 surrogate"}',  # orjson refuses: json keeps the lone surrogate
    '{"text": ["two", "sentences"], "id": 123456789012345678901234567890}',
    '{"text": "unicode \\u00e9\\u6771 🙂", "nested": {"a": [1, 2.5, null]}}',
    "not json at all",
    '{"text": ""}',
]


def test_texts_match_json(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8", errors="surrogatepass")
    blend = BlendConfig(sources=[{"name": "s", "uri": str(path), "max_bad_fraction": 0.5}])
    stream = read_source(blend.sources[0])
    expected = []
    for line in LINES:
        try:
            expected.append(json.loads(line)["text"])
        except ValueError:
            continue
    assert list(stream.texts()) == expected
    assert stream.info().num_rows == len(expected)
