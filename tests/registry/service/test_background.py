"""BackgroundCommitter: a plain torch loop's checkpoints committed in the background, resumed, rank 0 only."""

import pytest
import torch
from safetensors.torch import save_file

import modelreg
from modelreg.devnet import manager
from modelreg.formats.manifest import load_model
from modelreg.formats.seal import seal_dataset
from modelreg.service.background import BackgroundCommitter
from modelreg.service.journal import Journal


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    try:
        yield modelreg.connect(home)
    finally:
        manager.down(home)


def _save(directory, step: int):
    """What a plain loop saves: a directory with the weights and its own config."""
    directory.mkdir(parents=True)
    torch.manual_seed(step)
    save_file({"w": torch.randn(8, 8), "b": torch.zeros(8)}, directory / "model.safetensors")
    (directory / "config.json").write_text('{"hidden": 8}')
    return directory


def test_a_loop_commits_every_checkpoint_in_order_each_the_parent_of_the_next(registry, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("to be or not to be")
    with BackgroundCommitter("loop-model", journal=tmp_path / "commits.jsonl", registry=registry,
                             dataset=data) as committer:
        for step in (10, 20, 30):
            committer.submit(_save(tmp_path / f"step-{step}", step), step=step, metrics={"loss": 1 / step})
    commits = committer.commits
    assert [c.step for c in commits] == [10, 20, 30] and [c.version for c in commits] == [1, 2, 3]
    history = registry.history("loop-model")
    assert [v["parent"] for v in history] == [None] + [{"model_id": commits[0].model_id, "version": v}
                                                        for v in (1, 2)]
    assert {v["dataset_root"] for v in history} == {seal_dataset(data).root}
    for step, c in zip((10, 20, 30), commits):
        assert registry.verify(str(tmp_path / f"step-{step}"), "loop-model").version == c.version
    assert load_model(registry.ipfs.cat(commits[1].manifest_cid))[0]["metrics"] == {"loss": 0.05}


def test_a_killed_run_resumed_with_its_journal_commits_what_was_left_and_continues_the_chain(registry, tmp_path):
    journal = tmp_path / "commits.jsonl"
    with BackgroundCommitter("resumed-model", journal=journal, registry=registry) as committer:
        committer.submit(_save(tmp_path / "s1", 1), step=1)
    # Killed after journaling step 2 as seen, before its commit.
    Journal(journal).append("seen", step=2, path=str(_save(tmp_path / "s2", 2)), metrics={}, config={},
                            environment={})
    with BackgroundCommitter("resumed-model", journal=journal, registry=registry) as committer:
        committer.submit(_save(tmp_path / "s3", 3), step=3)
    assert [(c.step, c.version) for c in committer.commits] == [(2, 2), (3, 3)]
    parents = [v["parent"] and v["parent"]["version"] for v in registry.history("resumed-model")]
    assert parents == [None, 1, 2]


def test_on_a_rank_other_than_0_nothing_connects_or_commits(monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    with BackgroundCommitter("never", journal=tmp_path / "j.jsonl", home=tmp_path / "no-home",
                             rpc_url="http://127.0.0.1:1") as committer:
        committer.submit(tmp_path / "missing", step=1)
    assert committer.commits == [] and not (tmp_path / "j.jsonl").exists()
    assert not (tmp_path / "no-home").exists()
