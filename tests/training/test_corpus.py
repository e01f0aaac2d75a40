import hashlib
import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "training" / "corpus"
ROW = re.compile(r"^\| `([^`]+\.txt)` \| [^|]+ \| [^|]+ \| `([0-9a-f]{64})` \|$", re.M)


def test_every_corpus_file_has_the_sha256_its_readme_records():
    recorded = dict(ROW.findall((CORPUS / "README.md").read_text()))
    on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (CORPUS / "shakespeare").iterdir()}
    assert recorded == on_disk


def test_the_corpus_is_a_few_megabytes_at_most_and_ships_its_license():
    total = sum(p.stat().st_size for p in (CORPUS / "shakespeare").iterdir())
    assert 1_000_000 < total < 3_000_000
    assert "Creative Commons Attribution" in (CORPUS / "COPYING-open-shakespeare.txt").read_text()
