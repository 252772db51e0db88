"""Tokenizers: the trained byte-level BPE round-trips through transformers; loading fails clearly offline."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemotron.data.synthetic import pretrain_documents
from nemotron.data.tokenizer import EOS_TOKEN, TokenEncoder, load_tokenizer, tokenizer_digest, train_bpe
from nemotron.errors import NemotronError

pytestmark = pytest.mark.integration

TEXTS = ["12 + 7 = 19", "Question: Ana has 3 apples.\nAnswer: 3", "naïve café — 東京 🙂", "", "  spaces  "]


def test_trained_tokenizer_loads_with_auto_tokenizer_and_round_trips(bpe_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bpe_dir)
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.eos_token_id == 0
    assert 300 < len(tokenizer) <= 1024
    for text in TEXTS:
        ids = tokenizer(text).input_ids  # no BOS/EOS added: the pretraining data appends EOD itself
        assert EOS_TOKEN not in tokenizer.convert_ids_to_tokens(ids)
        assert tokenizer.decode(ids) == text  # byte-level: any text, no unknown tokens
    assert [tokenizer.decode([i]) for i in tokenizer("1234").input_ids] == ["1", "2", "3", "4"]  # digits split
    config = json.loads((Path(bpe_dir) / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # what transformers 4.x loads too


def test_trained_tokenizer_has_a_chat_template(bpe_dir):
    tokenizer = load_tokenizer(bpe_dir)
    chat = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "2 + 2 = 4."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    assert text == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n"
    ids = tokenizer(text).input_ids
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_end|>")) == 2  # one token each, not spelled out


def test_training_is_deterministic(tmp_path):
    texts = [row["text"] for row in pretrain_documents(300, seed=3)]
    first = train_bpe(texts, tmp_path / "a", vocab_size=600)
    second = train_bpe(iter(texts), tmp_path / "b", vocab_size=600)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert tokenizer_digest(first) == tokenizer_digest(second)


def test_encoder_pickles_and_matches_the_tokenizer(bpe_dir):
    tokenizer = load_tokenizer(bpe_dir)
    for add_special_tokens in (False, True):
        encoder = pickle.loads(pickle.dumps(TokenEncoder(tokenizer, add_special_tokens)))
        expected = [tokenizer(t, add_special_tokens=add_special_tokens).input_ids for t in TEXTS]
        assert encoder.encode(TEXTS) == expected


def test_a_directory_without_a_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "README.md").write_text("no tokenizer here")
    with pytest.raises(NemotronError, match="must hold a Hugging Face tokenizer"):
        load_tokenizer(str(tmp_path))


def test_an_unknown_tokenizer_offline_fails_fast_naming_it_and_the_setting(tmp_path):
    code = "from nemotron.data.tokenizer import load_tokenizer\nload_tokenizer('nobody/no-such-tokenizer')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 60 and result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "NemotronError" in message and "'nobody/no-such-tokenizer'" in message
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path / "hf") in message


# -- a long step says it is alive: a line on stderr every HEARTBEAT_S seconds, terminal or not ------------------


def test_a_long_tokenizer_training_prints_heartbeats(tmp_path, capsys, monkeypatch):
    """One huge document keeps the BPE trainer busy for minutes: a line every HEARTBEAT_S seconds says so."""
    from nemotron.data import progress

    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.05)

    def slow_texts():
        for i in range(5):
            time.sleep(0.1)
            yield f"document {i}: {i} + {i} = {2 * i}"

    train_bpe(slow_texts(), tmp_path / "tok", vocab_size=300)
    lines = [line for line in capsys.readouterr().err.splitlines() if "training the byte-level BPE" in line]
    assert len(lines) >= 3, lines
    assert "texts read" in lines[-1] and "s so far" in lines[-1]


def test_rate_progress_prints_heartbeats_when_stderr_is_not_a_terminal(capsys):
    from nemotron.data.progress import RateProgress

    with RateProgress("tokenizing", heartbeat_s=0.05) as progress:
        progress.advance(rows=3, tokens=42)
        time.sleep(0.3)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tokenizing: 3 rows")]
    assert len(lines) >= 3 and "42 tokens" in lines[0], lines


def test_rate_progress_lines_give_an_eta_when_the_total_is_known(capsys):
    from nemotron.data.progress import RateProgress
    from nemotron.data.sources import ScaleConfig, SourceConfig

    synthetic = [SourceConfig(name=f"s{i}", kind="synthetic", task="pretrain", num_rows=1000) for i in range(2)]
    assert ScaleConfig(max_rows_per_source=300).expected_rows(synthetic) == 600
    assert ScaleConfig(fraction=0.5).expected_rows(synthetic) == 1000
    assert ScaleConfig().expected_rows([*synthetic, SourceConfig(name="f", uri="/data/*.jsonl")]) is None

    with RateProgress("tokenizing", total_rows=600, heartbeat_s=0.05) as progress:
        progress.advance(rows=300, tokens=42)
        time.sleep(0.3)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tokenizing: 300 rows")]
    assert lines and ", ETA 0:" in lines[-1], lines
