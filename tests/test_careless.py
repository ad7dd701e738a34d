"""The package under careless and hostile use: files that must not be replaced, empty vocabularies,
schedules that cannot mean what they say, sizes that cannot fit, more threads than CPUs, options
that can only fail, sweeps with failing runs, Ctrl-C at any moment. Every input either works or
fails at once with a message naming it, and a failed call changes nothing and leaves nothing
half-made (docs/guarantees.md)."""

from __future__ import annotations

import os
import pathlib
import socket

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import _files


@pytest.fixture(scope="module")
def model() -> mm.MLP:
    return mm.MLP(mm.Vocab.from_words(["abc", "cab"]), n_embd=2, n_hidden=4, seed=1)


# ------------------------------------------------------------------------------------------------ files


def special_paths(tmp_path: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    """Paths that hold something other than a regular file, and the word the refusal uses. (No real
    device is used: were the check ever broken, the test must not replace /dev/null; a pipe and a
    socket are the same case, a special file, and a device is checked by check_writable alone.)"""
    target = tmp_path / "target.npz"
    target.write_bytes(b"keep me")
    os.symlink(target, tmp_path / "link.npz")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.npz")
    os.mkfifo(tmp_path / "pipe.npz")
    (tmp_path / "folder.npz").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.npz"))
    sock.close()
    return {
        "link": (tmp_path / "link.npz", "a symbolic link"),
        "dangling link": (tmp_path / "dangling.npz", "a symbolic link"),
        "pipe": (tmp_path / "pipe.npz", "a pipe"),
        "folder": (tmp_path / "folder.npz", "a folder"),
        "socket": (tmp_path / "sock.npz", "a socket"),
    }


def listing(folder: pathlib.Path) -> dict[str, tuple]:
    return {
        p.name: (p.is_symlink(), p.is_dir(), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in folder.iterdir()
    }


def test_save_refuses_links_folders_and_special_files_naming_the_path(tmp_path, model):
    """save() renames a temporary file over its path: it refuses, before writing anything, a path
    that is a symbolic link (it would replace the link, not write its target), a folder, a pipe, a
    socket or a device, naming the path as given."""
    cases = special_paths(tmp_path)
    before = listing(tmp_path)
    for name, (path, kind) in cases.items():
        for arg in (path, str(path), os.fsencode(path)):
            with pytest.raises(OSError) as e:
                model.save(arg)
            msg = str(e.value)
            assert str(path) in msg and kind in msg and ".tmp" not in msg, (name, msg)
        with pytest.raises(OSError, match=kind):
            mm.checkpoint.save(path, model)
    assert listing(tmp_path) == before  # nothing replaced, no temporary file
    # a device: the check alone (nothing is written)
    if os.path.exists("/dev/null") and not os.path.isfile("/dev/null"):
        with pytest.raises(FileExistsError, match=r"/dev/null: it is a device"):
            _files.check_writable("/dev/null", "checkpoint")


def test_save_errors_name_the_path_given_not_the_temporary_file(tmp_path, model):
    for path, kind, fragment in [
        (tmp_path / "no" / "such" / "m.npz", FileNotFoundError, "does not exist"),
        (f"{tmp_path}/sub/", IsADirectoryError, "names a folder"),
        ("", IsADirectoryError, "names a folder"),
    ]:
        with pytest.raises(kind) as e:
            model.save(path)
        assert str(path) in str(e.value) and fragment in str(e.value) and ".tmp" not in str(e.value)
    # an error while writing (a full disk): the path given, and no temporary file left
    ro = tmp_path / "ro"
    ro.mkdir()

    def full(f):
        raise OSError(28, "No space left on device", str(ro / ".tmp-abc"))

    with pytest.raises(OSError) as e:
        _files.atomic_write(ro / "x.json", full, what="table")
    assert str(e.value) == f"cannot write the table {ro / 'x.json'}: No space left on device"
    assert e.value.errno == 28 and os.listdir(ro) == []


def test_save_replaces_a_regular_file_and_keeps_its_hard_links_apart(tmp_path, model):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.link(path, tmp_path / "other")
    model.save(path)
    assert mm.MLP.load(path).get_params()["C"].tolist() == model.get_params()["C"].tolist()
    assert (tmp_path / "other").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "other"]


def test_plots_are_written_whole_and_refuse_special_files(tmp_path):
    pytest.importorskip("matplotlib")
    from makemore_cpp import plots

    cases = special_paths(tmp_path)
    before = listing(tmp_path)
    for path, kind in cases.values():
        with pytest.raises(OSError, match=kind):
            plots.loss_curve(np.linspace(3, 2, 50), path, window=5)
    assert listing(tmp_path) == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        plots.loss_curve(np.linspace(3, 2, 50), tmp_path / "afile" / "sub" / "p.png", window=5)
    assert listing(tmp_path) == dict(before, afile=(False, False, b"x"))


# -------------------------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize("words", [[], [""], ["", ""], ()])
def test_empty_vocabularies_are_refused(words):
    with pytest.raises(ValueError, match="at least one character"):
        mm.Vocab.from_words(words)
    with pytest.raises(ValueError, match="chars is empty"):
        mm.Vocab([])
