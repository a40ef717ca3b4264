""".ci/check-tree: outward symlinks and tracked-but-ignored files fail CI, naming each path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK_TREE = ROOT / ".ci" / "check-tree"

# The throwaway repository sees neither the machine's nor the user's git config (a global excludes file
# would change what counts as ignored).
_GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@localhost",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@localhost",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=_GIT_ENV, check=True, capture_output=True)


def _check_tree(repo: Path) -> subprocess.CompletedProcess[str]:
    # python3, not the venv's interpreter: CI runs the check before the venv exists.
    return subprocess.run(
        ["python3", ".ci/check-tree"],
        cwd=repo,
        env=_GIT_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository shaped like ours: the check itself, a .gitignore, a source file."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(CHECK_TREE, repo / ".ci" / "check-tree")
    (repo / ".gitignore").write_text("/.venv\n/.venv-octoprint\n__pycache__\n/state\n")
    (repo / "controller").mkdir()
    (repo / "controller" / "fleet.py").write_text("PRINTERS = []\n")
    _git(repo, "init", "-q", "-b", "main")
    _commit(repo, ".")
    return repo


def _commit(repo: Path, *paths: str, force: bool = False) -> None:
    _git(repo, "add", *(["-f"] if force else []), "--", *paths)
    _git(repo, "commit", "-q", "-m", "change")


def test_a_clean_repository_passes(repo: Path) -> None:
    done = _check_tree(repo)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_tracked_symlink_to_an_absolute_path_fails_and_is_named(repo: Path) -> None:
    (repo / "venv-link").symlink_to("/tmp/venv-octoprint")
    _commit(repo, "venv-link")
    done = _check_tree(repo)
    assert done.returncode == 1
    assert "venv-link: tracked symlink to an absolute path (-> /tmp/venv-octoprint)" in done.stderr


def test_a_tracked_relative_symlink_that_climbs_out_fails_and_is_named(repo: Path) -> None:
    (repo / "controller" / "shared").symlink_to("../../elsewhere")
    _commit(repo, "controller/shared")
    done = _check_tree(repo)
    assert done.returncode == 1
    assert "controller/shared: tracked symlink resolves outside the repository" in done.stderr


def test_a_symlink_that_leaves_through_another_link_fails(repo: Path) -> None:
    # `top` is the repository root, so `top/../x` is outside although it reads as `x`.
    (repo / "top").symlink_to(".")
    (repo / "sneaky").symlink_to("top/../x")
    _commit(repo, "top", "sneaky")
    done = _check_tree(repo)
    assert done.returncode == 1
    assert "sneaky: tracked symlink resolves outside the repository" in done.stderr
    assert "top:" not in done.stderr


def test_a_tracked_symlink_to_a_file_inside_passes(repo: Path) -> None:
    (repo / "deploy").mkdir()
    (repo / "deploy" / "fleet.py").symlink_to("../controller/fleet.py")
    _commit(repo, "deploy/fleet.py")
    done = _check_tree(repo)
    assert done.returncode == 0, done.stderr


def test_a_tracked_file_that_gitignore_matches_fails_and_is_named(repo: Path) -> None:
    (repo / "state").mkdir()
    (repo / "state" / "farmctl.db").write_text("not really sqlite\n")
    (repo / ".venv-octoprint").symlink_to("/tmp/venv-octoprint")
    _commit(repo, "state/farmctl.db", ".venv-octoprint", force=True)
    done = _check_tree(repo)
    assert done.returncode == 1
    assert "state/farmctl.db: tracked but ignored by .gitignore:4: /state" in done.stderr
    # The link that once broke every clone is named twice: it points outward and it is ignored.
    assert ".venv-octoprint: tracked symlink to an absolute path" in done.stderr
    assert ".venv-octoprint: tracked but ignored by .gitignore:2: /.venv-octoprint" in done.stderr
    assert "3 problem(s)" in done.stderr


def test_this_repository_passes() -> None:
    done = subprocess.run(
        ["python3", str(CHECK_TREE)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
