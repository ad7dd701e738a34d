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


# -------------------------------------------------------------------------------------------- schedules

BAD_SCHEDULES = {
    "0.1@0:0.01@0": "step 0 is given two rates, 0.1 and 0.01",
    "0.1@0:0.01@7:0.02@7": "step 7 is given two rates, 0.01 and 0.02",
    "cosine:3e-3:min=1": "min = 1 is above the rate 0.003: the schedule would rise",
    "cosine:3e-3:warmup=-5": "warmup must be >= 0 steps, got -5",
    "cosine:3e-3:warmup=100": "the warm-up of 100 steps leaves none of the run's 100 steps to decay",
    "cosine:3e-3:warmup=1.5": "warmup '1.5' is not a whole number",
    "cosine:3e-3:warmup": "'warmup' is not an option: write warmup=STEPS or min=RATE",
    "cosine:3e-3:warmup=1:warmup=2": "warmup is given twice",
    "cosine:3e-3:decay=2": "unknown option 'decay'",
    "cosine": "cosine needs its peak rate, as cosine:3e-3",
    "cosine:fast": "the rate 'fast' is not a number",
    "0.1@0:0.01": "'0.01' is not rate@step (as 0.01@100000)",
    "0.1@0:@5": "'@5' is not rate@step",
    "0.1@0@5": "'0.1@0@5' is not rate@step",
    "0.1@5": "the first rate must start at step 0 (add rate@0), got steps [5]",
    "0.1@0:0.2@-3": "steps must be >= 0, got -3",
    "0.1@0:0.2@x": "a step 'x' is not a whole number",
    "0.1@0:nan@5": "a rate must be finite and >= 0, got nan",
    "0.1:0.2": "rates from given steps need @step each",
    "nan": "the rate must be finite and >= 0, got nan",
    "-0.1": "the rate must be finite and >= 0, got -0.1",
    "1e400": "the rate must be finite and >= 0, got 1e400",
    "inf": "the rate must be finite and >= 0, got inf",
    "fast": "the rate 'fast' is not a number",
    "": "it is empty; write a rate (0.1)",
    "  ": "it is empty",
}


@pytest.mark.parametrize("text", list(BAD_SCHEDULES))
def test_schedules_that_cannot_mean_what_they_say_are_refused_plainly(text):
    with pytest.raises(ValueError) as e:
        mm.parse_schedule(text, 100)
    msg = str(e.value)
    assert msg.startswith(f"cannot read the learning-rate schedule {text!r}: "), msg
    assert BAD_SCHEDULES[text] in msg, msg
    assert "unpack" not in msg and "could not convert" not in msg and "invalid literal" not in msg


def test_the_schedule_functions_check_their_arguments_too():
    for make, fragment in [
        (lambda: mm.step_decay([(0, 0.1), (0, 0.01)]), "step 0 is given two rates"),
        (lambda: mm.step_decay([(0, 0.1), (-2, 0.01)]), "steps must be >= 0, got -2"),
        (lambda: mm.step_decay([(0, float("nan"))]), "finite and >= 0"),
        (lambda: mm.step_decay([(0, -1)]), "finite and >= 0"),
        (lambda: mm.cosine(3e-3, 100, warmup=-1), "warmup must be >= 0"),
        (lambda: mm.cosine(3e-3, 100, min_lr=1), "above the rate"),
        (lambda: mm.cosine(float("inf"), 100), "finite and >= 0"),
        (lambda: mm.parse_schedule(float("nan")), "the learning rate must be finite and >= 0, got nan"),
        (lambda: mm.parse_schedule(-0.5), "got -0.5"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            make()
    for bad in (True, None, b"0.1", [0.1]):
        with pytest.raises(TypeError, match="a learning-rate schedule is a number or text"):
            mm.parse_schedule(bad)
    with pytest.raises(TypeError, match="steps must be an integer"):
        mm.step_decay([(0.5, 0.1)])
    # what they accept: any order of distinct steps; integral step texts; a run of 0 steps
    assert mm.parse_schedule("0.3@0:0.1@9:0.2@5", 10)(6) == 0.2
    assert mm.parse_schedule("0.1@0:0.01@1e5")(100_000) == 0.01
    assert mm.parse_schedule("cosine:3e-3:warmup=1000", 0) is not None
    assert mm.parse_schedule(" 0.1 ")(5) == 0.1 and mm.parse_schedule(0)(0) == 0.0


# -------------------------------------------------------------------------------------------- threads


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_thread_counts_above_the_cpus_are_capped_and_the_pool_shrinks():
    """set_num_threads(64) on 2 CPUs trained twenty times slower, and its 64 threads stayed until the
    next job: now a count above the CPUs is capped with a warning, and a smaller pool stops the
    threads it no longer needs at once. Results are the same bits at any count, more threads than
    CPUs (set in the core directly) included."""
    cpus = mm._core.default_threads()
    before = mm.get_num_threads()
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 27, (5000, 3)), rng.integers(0, 27, 5000)
    base = mm.MLP(27, 3, 10, 600, seed=3)  # large enough that a step is split between threads

    def digest() -> bytes:
        m = base.copy()
        mm.train(m, X, Y, 5, batch_size=512, lr=0.1)
        return b"".join(a.tobytes() for a in m.get_params().values()) + m.logits(X[:2000]).tobytes()

    try:
        with pytest.warns(RuntimeWarning, match=rf"set_num_threads\(64\): this process may run on {cpus} "):
            mm.set_num_threads(64)
        assert mm.get_num_threads() == cpus
        with pytest.raises(ValueError, match="n must be >= 1, got 0"):
            mm.set_num_threads(0)
        assert mm.get_num_threads() == cpus  # a refused call changes nothing
        mm.set_num_threads(1)
        want, idle = digest(), os_threads()
        mm._core.set_num_threads(7)  # more threads than CPUs: only the core allows it
        assert digest() == want
        assert os_threads() >= idle + 6  # the pool's 6 workers
        mm.set_num_threads(1)
        assert os_threads() <= idle  # stopped at once, before any other job
        mm.set_num_threads(min(2, cpus))
        assert digest() == want
    finally:
        mm._core.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- sizes

SIZES_CHILD = r"""
import json, resource, sys
import numpy as np
import makemore_cpp as mm
# were a check missing, the allocation fails here at once instead of the machine running out
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, resource.RLIM_INFINITY))
m = mm.MLP(mm.Vocab.from_words(["abc", "cab"]), n_embd=2, n_hidden=4, seed=1)
before = {k: a.tobytes() for k, a in m.get_params().items()}
X, Y = np.zeros((3, 3), np.int64), np.zeros(3, np.int64)
big = np.broadcast_to(np.zeros(3, np.int64), (10**10, 3))   # no memory: a view
calls = {
    "sample": lambda: m.sample(10**12),
    "sample_ids": lambda: m.sample_ids(10**10),
    "train": lambda: mm.train(m, X, Y, 10**12),
    "train callable": lambda: mm.train(m, X, Y, 10**11, lr=lambda s: 0.1),
    "logits": lambda: m.logits(big),
    "loss": lambda: m.loss(big, np.broadcast_to(np.int64(1), (10**10,))),
    "build_dataset": lambda: mm.build_dataset(["abc"] * 1000, m.vocab, 10**9),
    "model": lambda: mm.MLP(27, 3, 10, (10**6, 10**6)),
}
out = {}
for name, f in calls.items():
    try:
        f()
        out[name] = "accepted"
    except MemoryError as e:
        out[name] = str(e)
out["unchanged"] = before == {k: a.tobytes() for k, a in m.get_params().items()}
print(json.dumps(out))
"""

SIZE_MESSAGES = {
    "sample": r"^sample\(n=1,000,000,000,000\) needs 58\.2 TiB at the least \(64 bytes a name\)",
    "sample_ids": r"^sample_ids\(n=10,000,000,000, max_len=100\) needs 3\.6 TiB for its int32 ids",
    "train": r"^train\(steps=1,000,000,000,000\) needs 14\.6 TiB for its per-step arrays \(16 bytes",
    "train callable": r"^train\(steps=100,000,000,000\) needs 5\.1 TiB for its per-step arrays \(56 bytes",
    "logits": r"^logits\(X\) of 10,000,000,000 rows needs [\d.]+ GiB for its \(10,000,000,000, 4\) float32",
    "loss": r"^X of shape \(10000000000, 3\) needs 111\.8 GiB as the core's int32 copy",
    "build_dataset": r"^build_dataset\(block_size=1,000,000,000\) of 4,000 examples needs 14\.6 TiB",
    "model": r"^a model of these sizes needs 3\.6 TiB for its parameters alone",
}


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="reads the machine's memory")
def test_sizes_that_cannot_fit_are_refused_up_front_with_the_figure():
    """model.sample(10**12) grew until the kernel killed the process: every size that cannot fit in
    this machine's memory -- names, ids, per-step arrays, logits, copies of views, examples, models
    -- is refused before anything is allocated, with the figure, naming the argument."""
    import json
    import re
    import subprocess
    import sys

    from makemore_cpp._validate import machine_memory

    if machine_memory() > 3 << 40:
        pytest.skip("this machine has more memory than the sizes asked for here")
    p = subprocess.run(
        [sys.executable, "-c", SIZES_CHILD], capture_output=True, text=True, timeout=120, env=child_env()
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.pop("unchanged") is True
    for name, pattern in SIZE_MESSAGES.items():
        assert re.search(pattern, out[name]), (name, out[name])
        assert "; this machine has " in out[name]


def child_env() -> dict:
    env = dict(os.environ)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
