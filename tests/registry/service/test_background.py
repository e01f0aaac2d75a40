"""BackgroundCommitter: a plain torch loop's checkpoints committed in the background, resumed, rank 0 only."""

import subprocess

import torch
from safetensors.torch import save_file

from modelreg.formats.manifest import load_model
from modelreg.formats.seal import seal_dataset
from modelreg.service.background import BackgroundCommitter
from modelreg.service.journal import Journal


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


def _git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def _code_revision(registry, commit) -> str | None:
    return load_model(registry.ipfs.cat(commit.manifest_cid))[0]["code_revision"]


def _commit_one(registry, tmp_path, name: str, **kwargs):
    with BackgroundCommitter(name, journal=tmp_path / f"{name}.jsonl", registry=registry, **kwargs) as committer:
        committer.submit(_save(tmp_path / name, 1), step=1)
    return committer.commits[0]


def test_the_code_revision_is_the_working_tree_the_loop_runs_in_or_the_one_given(
        registry, tmp_path, monkeypatch):
    # The user's project: a git repository of its own, not modelreg's.
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('training')\n")
    _git(project, "init", "-q")
    _git(project, "add", "train.py")
    _git(project, "commit", "-q", "-m", "the training script")
    head = _git(project, "rev-parse", "HEAD")
    monkeypatch.chdir(project)
    assert _code_revision(registry, _commit_one(registry, tmp_path, "rev-clean")) == head
    (project / "train.py").write_text("print('changed')\n")
    assert _code_revision(registry, _commit_one(registry, tmp_path, "rev-dirty")) == head + "-dirty"
    given = _commit_one(registry, tmp_path, "rev-given", code_revision="v1.2 of my trainer")
    assert _code_revision(registry, given) == "v1.2 of my trainer"


def test_outside_a_git_checkout_no_code_revision_is_recorded(registry, tmp_path, monkeypatch):
    elsewhere = tmp_path / "not-a-checkout"
    elsewhere.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git looks no higher than here
    monkeypatch.chdir(elsewhere)
    assert _code_revision(registry, _commit_one(registry, tmp_path, "rev-none")) is None
