import pytest

from modelreg.errors import CheckpointInvalid
from modelreg.training.tokenizer import EOT, load_tokenizer, train_tokenizer

TEXTS = ["To be, or not to be, that is the question.\n" * 20, "Shall I compare thee to a summer's day?\n" * 20]


def test_training_twice_gives_identical_bytes(tmp_path):
    a = train_tokenizer(TEXTS, 300, tmp_path / "a.json")
    b = train_tokenizer(TEXTS, 300, tmp_path / "b.json")
    assert a.sha256 == b.sha256
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_different_text_gives_a_different_tokenizer(tmp_path):
    a = train_tokenizer(TEXTS, 300, tmp_path / "a.json")
    b = train_tokenizer(TEXTS[:1], 300, tmp_path / "b.json")
    assert a.sha256 != b.sha256


def test_any_text_round_trips_even_bytes_never_seen(tmp_path):
    art = train_tokenizer(TEXTS, 300, tmp_path / "t.json")
    tok, _ = load_tokenizer(art.path, art.sha256)
    text = "Zebra quartz ünïcödé ☃ 42"
    assert tok.decode(tok.encode(text).ids) == text
    assert tok.token_to_id(EOT) is not None


def test_vocabulary_stays_within_the_configured_size(tmp_path):
    art = train_tokenizer(TEXTS, 300, tmp_path / "t.json")
    assert art.vocab_size <= 300


def test_a_changed_tokenizer_file_is_refused(tmp_path):
    art = train_tokenizer(TEXTS, 300, tmp_path / "t.json")
    art.path.write_bytes(art.path.read_bytes().replace(b'"the"', b'"teh"', 1) + b" ")
    with pytest.raises(CheckpointInvalid, match=r"tokenizer .*t\.json has sha256 0x[0-9a-f]{64}, the checkpoint"):
        load_tokenizer(art.path, art.sha256)


def test_a_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(CheckpointInvalid, match=r"tokenizer .*nope\.json does not exist"):
        load_tokenizer(tmp_path / "nope.json")
