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


@pytest.fixture(scope="module", params=["mlp", "layers"])
def model(request) -> mm.Model:
    """The lecture's MLP, and a model of the layer classes (nn.Sequential): the same Model methods
    (save, sample, ...) and the same checks."""
    vocab = mm.Vocab.from_words(["abc", "cab"])
    if request.param == "mlp":
        return mm.MLP(vocab, n_embd=2, n_hidden=4, seed=1)
    nn = mm.nn
    layers = [
        nn.Embedding(4, 2),
        nn.Flatten(),
        nn.Linear(6, 4),
        nn.BatchNorm1d(4),
        nn.Tanh(),
        nn.Linear(4, 4),
    ]
    return nn.Sequential(layers, vocab=vocab, block_size=3, seed=1)


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
    loaded = mm.load(path).get_params()
    assert {k: a.tolist() for k, a in loaded.items()} == {
        k: a.tolist() for k, a in model.get_params().items()
    }
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
nn = mm.nn
layers = [nn.Embedding(4, 2), nn.FlattenConsecutive(3), nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Tanh(),
          nn.Linear(4, 4)]
seq = mm.nn.Sequential(layers, vocab=m.vocab, block_size=3, seed=1)
before = {k: a.tobytes() for k, a in [*m.get_params().items(), *seq.get_params().items()]}
X, Y = np.zeros((3, 3), np.int64), np.zeros(3, np.int64)
big = np.broadcast_to(np.zeros(3, np.int64), (10**10, 3))   # no memory: a view
calls = {
    "layers sample": lambda: seq.sample(10**12),
    "layers sample_ids": lambda: seq.sample_ids(10**10),
    "layers train": lambda: mm.train(seq, X, Y, 10**12),
    "layers logits": lambda: seq.logits(big),
    "layers model": lambda: mm.nn.Sequential(
        [nn.Embedding(4, 2), nn.Flatten(), nn.Linear(6, 10**6), nn.Linear(10**6, 10**6)], vocab=4,
        block_size=3),
    "sample": lambda: m.sample(10**12),
    "sample_ids": lambda: m.sample_ids(10**10),
    "train": lambda: mm.train(m, X, Y, 10**12),
    "train callable": lambda: mm.train(m, X, Y, 10**11, lr=lambda s: 0.1),
    "logits": lambda: m.logits(big),
    "loss": lambda: m.loss(big, np.broadcast_to(np.int64(1), (10**10,))),
    "build_dataset": lambda: mm.build_dataset(["abc"] * 1000, m.vocab, 10**9),
    "model": lambda: mm.MLP(27, 3, 10, (10**6, 10**6)),
}
if len(sys.argv) > 1:
    calls["load_words"] = lambda: mm.load_words(sys.argv[1])
out = {}
for name, f in calls.items():
    try:
        f()
        out[name] = "accepted"
    except MemoryError as e:
        out[name] = str(e)
out["unchanged"] = before == {
    k: a.tobytes() for k, a in [*m.get_params().items(), *seq.get_params().items()]
}
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
    "layers sample": r"^sample\(n=1,000,000,000,000\) needs 58\.2 TiB at the least \(64 bytes a name\)",
    "layers sample_ids": r"^sample_ids\(n=10,000,000,000, max_len=100\) needs 3\.6 TiB for its int32 ids",
    "layers train": r"^train\(steps=1,000,000,000,000\) needs 14\.6 TiB for its per-step arrays \(16 bytes",
    "layers logits": r"^logits\(X\) of 10,000,000,000 rows needs [\d.]+ GiB for its \(10,000,000,000, 4\)",
    "layers model": r"^a model of these sizes needs 3\.6 TiB for its parameters alone",
    "load_words": r"^\S+sparse\.txt \(1\.0 TiB\) needs 3\.0 TiB to read as words at the least",
}


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="reads the machine's memory")
def test_sizes_that_cannot_fit_are_refused_up_front_with_the_figure(tmp_path):
    """model.sample(10**12) grew until the kernel killed the process: every size that cannot fit in
    this machine's memory -- names, ids, per-step arrays, logits, copies of views, examples, models
    -- and a file of words too large to read is refused before anything is allocated, with the
    figure, naming the argument."""
    import json
    import re
    import subprocess
    import sys

    from makemore_cpp._validate import machine_memory

    if machine_memory() > 3 << 40:
        pytest.skip("this machine has more memory than the sizes asked for here")
    sparse = tmp_path / "sparse.txt"
    try:
        with open(sparse, "wb") as f:
            f.truncate(1 << 40)  # 1 TiB that takes no room on disk
        words = [str(sparse)]
    except OSError:  # a file system without sparse files of that size
        words = []
    p = subprocess.run(
        [sys.executable, "-c", SIZES_CHILD, *words],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out.pop("unchanged") is True
    for name, pattern in SIZE_MESSAGES.items():
        if name == "load_words" and not words:
            continue
        assert re.search(pattern, out[name]), (name, out[name])
        assert "; this machine has " in out[name]


def child_env() -> dict:
    env = dict(os.environ)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# -------------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> pathlib.Path:
    """A small words file and two 20-step runs on it, what sample, diagnose and embeddings read:
    ``run``, the lecture's MLP, and ``layers``, part 5's model of layer classes (nn.Sequential) with
    its diagnostics."""
    from makemore_cpp import cli

    root = tmp_path_factory.mktemp("tiny")
    (root / "words.txt").write_text("\n".join(mm.load_names()[:300]) + "\n")
    common = dict(steps=20, eval_every=10, samples=0, plot=False, quiet=True)
    cli.run_train(root / "run", root / "words.txt", n_hidden=8, **common)
    cli.run_train(
        root / "layers", root / "words.txt", "wavenet", n_embd=4, n_hidden=8, diagnostics=5, **common
    )
    return root


def tree(root: pathlib.Path) -> dict[str, bytes | int | None]:
    """Every path under root, with the bytes of regular files (None for folders and the like)."""
    out = {}
    for p in sorted(root.rglob("*")):
        regular = p.is_file() and not p.is_symlink()
        big = regular and p.stat().st_size > 1 << 24  # (a sparse file of 1 TiB: its size)
        out[str(p.relative_to(root))] = p.stat().st_size if big else p.read_bytes() if regular else None
    return out


def run_main(args: list[str], cwd: pathlib.Path, capsys) -> tuple[int, str]:
    """cli.main in this process, in cwd: (exit status, stderr). argparse's usage errors exit 2."""
    from makemore_cpp import cli

    old = os.getcwd()
    os.chdir(cwd)
    try:
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    finally:
        os.chdir(old)
    return code, capsys.readouterr().err


REFUSED_BEFORE_ANY_WORK = [
    # train: found after the whole run, after the folder was made, or as numpy's error (exit 1)
    (["train", "--samples", "-1"], "--samples must be >= 0, got -1"),
    (["train", "--lr", "nan"], "--lr: cannot read the learning-rate schedule 'nan'"),
    (["train", "--lr", "0.1@0:0.01@0"], "step 0 is given two rates"),
    (["train", "--lr", "cosine:3e-3:min=1"], "the schedule would rise"),
    (["train", "--eval-every", "-5"], "--eval-every must be >= 0, got -5"),
    (["train", "--train-seed", "-1"], "--train-seed must be >= 0, got -1"),
    (["train", "--diagnostics", "1", "--batch-size", "1"], "--diagnostics needs --batch-size >= 2"),
    (["train", "--steps", str(10**13)], "--steps 10,000,000,000,000 needs"),
    (["train", "--samples", str(10**13)], "--samples 10,000,000,000,000 needs"),
    (["train", "--n-hidden", "100000x100000"], "needs 74.6 GiB at the least"),
    (["train", "--batch-size", "10000000", "--n-hidden", "100000"], "trained in batches of 10,000,000 needs"),
    (["train", "--momentum", "1"], "momentum must be < 1.0, got 1.0"),
    (["train", "--dropout", "nan"], "dropout must be finite, got nan"),
    (["train", "--n-hidden", "8x"], "--n-hidden: expected a width"),
    (["train", "-i", "missing.txt"], "missing.txt does not exist"),
    (["train", "-i", "afolder"], "is a folder"),
    (["train", "-i", "empty.txt"], "holds no words"),
    (["train", "-i", "huge.txt"], "huge.txt (1.0 TiB) needs 3.0 TiB to read as words at the least"),
    (["train", "--resume", "-o", "RUN", "--eval-every", "-5"], "--eval-every must be >= 0, got -5"),
    (["train", "-o", "afile"], "afile is a file, not a folder"),
    (["train", "-o", "linked"], "linked is a file, not a folder"),
    (
        ["train", "--preset", "best", "--steps", "500"],
        "the warm-up of 1,000 steps leaves none of the run's 500",
    ),
    # sample, lr-find, overfit, diagnose, embeddings
    (["sample", "RUN", "-n", "-1"], "-n must be >= 0, got -1"),
    (["sample", "RUN", "-n", str(10**13)], "-n 10,000,000,000,000 names needs"),
    (["sample", "RUN", "--temperature", "nan"], "--temperature must be finite, got nan"),
    (["sample", "RUN", "--prefix", "Z"], "--prefix: character 'Z'"),
    (["sample", "RUN", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["lr-find", "--lr-max", "inf", "-o", "x.png"], "--lr-max must be finite, got inf"),
    (["lr-find", "--lr-min", "1", "--lr-max", "0.1", "-o", "x.png"], "--lr-min must be below --lr-max"),
    (["lr-find", "--steps", "1", "-o", "x.png"], "--steps must be >= 2, got 1"),
    (["lr-find", "-o", "afolder"], "it is a folder"),
    (["overfit", "--lr", "nan"], "--lr must be finite, got nan"),
    (["overfit", "--tol", "-1"], "--tol must be >= 0.0, got -1.0"),
    (["diagnose", "RUN", "--rows", "1"], "--rows must be >= 2, got 1"),
    (["diagnose", "RUN", "-o", "afile"], "afile is a file, not a folder"),
    (["embeddings", "RUN", "-o", "linked"], "it is a symbolic link"),
    (["embeddings", "RUN", "-o", "afile/e.png"], "afile is a file, not a folder"),
    (["train", "-o", ""], "cannot write the run: the folder's path is empty"),
    (["diagnose", "RUN", "-o", ""], "cannot write the figures: the folder's path is empty"),
    (["sample", "pipe"], "pipe: not a checkpoint file: it is a pipe"),  # (reading it blocked for good)
    (["sample", "afolder/x.npz"], "no such checkpoint file or run folder"),
    # sweep: a bad value anywhere in the grid refuses the whole sweep before any run
    (["sweep", "--lr", "0.05,0.1,-0.1,0.2", "--n-hidden", "8"], "n_hidden=8 lr=-0.1: --lr: cannot read"),
    (["sweep", "--n-hidden", "8,100000x100000"], "n_hidden=100000x100000: a model of"),
    (["sweep", "--block-size", "2,3", "--jobs", "0"], "argument -j/--jobs: expected a positive integer"),
    (["sweep", "--n-hidden", "8", "-o", "afolder"], "it is a folder"),
]


@pytest.mark.parametrize(
    "args, message", REFUSED_BEFORE_ANY_WORK, ids=[" ".join(a)[:50] for a, _ in REFUSED_BEFORE_ANY_WORK]
)
def test_options_that_can_only_fail_are_refused_before_anything_is_written(
    tiny_run, tmp_path, args, message, capsys
):
    """Each of these was noticed only after work began (a whole run, a made folder), or not at all:
    now each is refused with exit status 2 and a message naming the option and its value, and
    nothing is written."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "empty.txt").write_text("\n \n")
    os.symlink(tmp_path / "afile", tmp_path / "linked")
    os.mkfifo(tmp_path / "pipe")
    if "huge.txt" in args:
        try:
            with open(tmp_path / "huge.txt", "wb") as f:
                f.truncate(1 << 40)  # 1 TiB that takes no room on disk
        except OSError:
            pytest.skip("this file system has no sparse files of 1 TiB")
    run_dir = tiny_run / "run"
    args = [str(run_dir) if a == "RUN" else a for a in args]
    if args[0] in ("train", "lr-find", "overfit", "sweep") and "-i" not in args:
        args += ["-i", str(tiny_run / "words.txt")]
    if args[0] == "train" and "-o" not in args:
        args += ["-o", "r"]
    before, run_before = tree(tmp_path), tree(tiny_run)
    code, err = run_main(args, tmp_path, capsys)
    assert code == 2, (code, err)
    assert message in err, err
    assert "Traceback" not in err
    assert tree(tmp_path) == before and tree(tiny_run) == run_before


# --------------------------------------------------------------------------------------------- sweeps


def read_csv(path: pathlib.Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_sweep_keeps_its_finished_runs_and_lists_the_failed_ones(tiny_run, tmp_path, capsys):
    """A run that fails (here it diverges) no longer throws the finished runs away: the table and
    the CSV hold every finished run, sorted by dev loss, then the failed one with its reason in one
    line; the exit status is 1."""
    words = tiny_run / "words.txt"
    args = ["sweep", "-i", words, "--lr", "0.05,1e30,0.1", "--n-hidden", "8", "--steps", "30", "-j", "1"]
    code, err = run_main([*args, "-o", "s.csv"], tmp_path, capsys)
    assert code == 1, err
    rows = read_csv(tmp_path / "s.csv")
    assert [r["lr"] for r in rows[:2]] and {r["lr"] for r in rows[:2]} == {"0.05", "0.1"}
    assert all(r["error"] == "" and float(r["dev_loss"]) > 0 for r in rows[:2])
    assert rows[2]["lr"] == "1e30" and rows[2]["dev_loss"] == ""
    assert rows[2]["error"].startswith("DivergenceError: the minibatch loss became nan at step")
    assert "FAILED: DivergenceError" in err
    assert sorted(os.listdir(tmp_path)) == ["s.csv"]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes in /proc")
def test_a_sweep_across_processes_survives_failing_and_killed_workers(tiny_run, tmp_path):
    """With 2 jobs, a run that raised in a worker ended in a pickling traceback. Now its reason comes
    back in one line; a worker killed outright (as the kernel kills one out of memory) fails its
    run, is replaced, and the other runs finish."""
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "makemore_cpp", "sweep", "-i", str(tiny_run / "words.txt"), "-j", "2"]
    args += ["--lr", "1e30,1e31,0.1,0.05,0.2", "--n-hidden", "16", "--steps", "300", "-o", "s.csv"]
    p = subprocess.Popen(
        args, cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        killed = None
        deadline = time.time() + 60
        while killed is None and time.time() < deadline and p.poll() is None:
            for pid in children(p.pid):
                cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"multiprocessing" in cmd and b"resource_tracker" not in cmd:
                    os.kill(pid, 9)  # a worker always holds a run (the parent gives it one at once)
                    killed = pid
                    break
            time.sleep(0.05)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert killed is not None, "no worker process was found"
    assert p.returncode == 1, (p.returncode, err[-3000:])
    rows = read_csv(tmp_path / "s.csv")
    assert len(rows) == 5 and "Traceback" not in err
    errors = sorted(r["error"] for r in rows if r["error"])
    assert any(e.startswith("DivergenceError: the minibatch loss became nan") for e in errors), errors
    assert any("killed by SIGKILL (perhaps out of memory)" in e for e in errors), errors
    assert sum(1 for r in rows if not r["error"]) >= 2
    assert "run(s) failed:" in out


POOL_CHILD = r"""
import json, signal, sys, time
from makemore_cpp.cli.sweep import _Pool

pool = _Pool(1, sys.argv[1], 1)
worker = pool._start()  # the first worker process: multiprocessing starts its resource tracker too
bit = 1 << (signal.SIGINT - 1)
samples = []
deadline = time.time() + 60
while time.time() < deadline:
    try:
        with open(f"/proc/{worker.process.pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    except OSError:
        break
    samples.append((bool(int(fields["SigBlk"], 16) & bit), bool(int(fields["SigIgn"], 16) & bit)))
    if samples[-1] == (False, True):  # the worker ignores SIGINT now
        break
pool.kill()
print(json.dumps(samples))
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the worker's signal masks in /proc")
def test_a_sweep_worker_never_takes_a_ctrl_c_for_its_own(tiny_run):
    """Ctrl-C in a terminal reaches every process of the group. A sweep's worker leaves it to the
    parent: from its start it has SIGINT blocked, then ignored. The first worker of a sweep started
    with SIGINT unblocked (multiprocessing, starting its resource tracker, unblocked it in the
    parent), and a Ctrl-C early in a sweep printed its traceback."""
    import json
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-c", POOL_CHILD, str(tiny_run / "words.txt")],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    samples = [tuple(s) for s in json.loads(p.stdout.strip().splitlines()[-1])]
    assert samples and samples[-1] == (False, True), samples
    assert all(blocked or ignored for blocked, ignored in samples), samples


def children(pid: int) -> list[int]:
    out = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


# ------------------------------------------------------------------------------------------ interrupts

TRAIN_INTERRUPTS_CHILD = r"""
import json, random, signal, sys, threading, time
import numpy as np
import makemore_cpp as mm

words = mm.load_names()[:2000]
vocab = mm.Vocab.from_words(words)
X, Y = mm.build_dataset(words, vocab, 3)
opts = dict(batch_size=64, lr=0.05, seed=5, optimizer="adamw")


def make():
    if sys.argv[2] == "mlp":
        return mm.MLP(vocab, n_hidden=64, seed=3)
    nn = mm.nn  # BatchNorm1d's running statistics move at every step too
    layers = [nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 64, bias=False), nn.BatchNorm1d(64),
              nn.Tanh(), nn.Linear(64, 27)]
    return nn.Sequential(layers, vocab=vocab, block_size=3, seed=3)


model = make()
state = mm.train(model, X, Y, 0, **opts).state
rng = random.Random(int(sys.argv[1]))
main = threading.main_thread().ident
out = {"interrupts": 0, "consistent": True, "losses": []}
for k in range(12):
    delay = rng.uniform(0.0, 0.15)
    threading.Timer(delay, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
    step0 = state.step
    try:
        h = mm.train(model, X, Y, 10**6, state=state, **opts)
        raise SystemExit("finished before the signal")
    except mm.TrainingInterrupted as e:
        h = e.history
    except KeyboardInterrupt:
        h = None
    time.sleep(0.2)  # (no signal left in flight)
    out["interrupts"] += 1
    if h is None or h.state is not state or state.step != step0 + len(h.loss) or h.step0 != step0:
        out["consistent"] = False
    else:
        out["losses"] += h.loss.tolist()
# One straight run of as many steps gives the same parameters and losses.
straight = make()
hs = mm.train(straight, X, Y, state.step, **opts)
out["steps"] = state.step
a, b = model.get_params(), straight.get_params()
out["same_params"] = all(np.array_equal(a[k], b[k]) for k in a)
out["same_losses"] = hs.loss.tolist() == out.pop("losses")
print(json.dumps(out))
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("kind", ["mlp", "layers"])
def test_train_counts_its_steps_whenever_ctrl_c_lands(kind):
    """Ctrl-C at random moments of train(), of the MLP and of a model of layer classes with batch
    normalisation: each time it raises TrainingInterrupted (before the first step too), the state
    counts exactly the steps the model took and e.history holds them, so that calls interrupted
    again and again add up to one uninterrupted run, bit for bit (running statistics included).
    (The step count could lag the core's by a chunk of steps when the signal landed between the
    two.)"""
    import json
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-c", TRAIN_INTERRUPTS_CHILD, "7", kind],
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["interrupts"] == 12 and out["consistent"], out
    assert out["steps"] > 0 and out["same_params"] and out["same_losses"], out


def test_every_ctrl_c_in_train_carries_the_run_so_far():
    """A Ctrl-C while train() checked its arguments was a bare KeyboardInterrupt, and one during its
    last evaluation lost the run's history though its steps were done: each is a TrainingInterrupted
    now, whose history holds the steps taken (none, or all) and the state given. (The Ctrl-C is
    raised by what train() calls at that moment.)"""
    words = mm.load_names()[:50]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    m = mm.MLP(vocab, n_hidden=8, seed=1)

    class CtrlC:  # ids that are interrupted while train() reads them
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupted(call) -> mm.TrainingInterrupted:
        try:
            call()
        except KeyboardInterrupt as e:  # (a bare one must not end the test session)
            assert isinstance(e, mm.TrainingInterrupted), repr(e)
            return e
        raise AssertionError("not interrupted")

    before = {k: a.tobytes() for k, a in m.get_params().items()}
    e = interrupted(lambda: mm.train(m, CtrlC(), Y, 5))
    assert "before its first step" in str(e)
    assert len(e.history.loss) == 0 and e.history.state is None
    assert {k: a.tobytes() for k, a in m.get_params().items()} == before
    state = mm.train(m, X, Y, 3).state
    for call in (
        lambda: mm.train(m, CtrlC(), Y, 5, state=state),  # reading X
        lambda: mm.train(m, X, Y, 5, lr=ctrl_c, state=state),  # the rates, before the first step
    ):
        h = interrupted(call).history
        assert len(h.loss) == 0 and h.state is state and h.step0 == 3 and state.step == 3
    m.loss = ctrl_c  # the last evaluation
    e = interrupted(lambda: mm.train(m, X, Y, 4, X_val=X, Y_val=Y, state=state))
    assert "after 4 of 4 steps" in str(e)
    h = e.history
    assert len(h.loss) == 4 and h.state is state and state.step == 7 and h.stopped == "interrupted"


def campaign_module():
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "interrupt_campaign.py"
    spec = importlib.util.spec_from_file_location("interrupt_campaign", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="POSIX signals and /proc")
@pytest.mark.parametrize(
    "command, signals, seed", [("train", 2, 3), ("train-bn", 2, 8), ("sweep", 2, 4), ("sample", 1, 5)]
)
def test_ctrl_c_at_a_random_moment_ends_promptly_and_cleanly(tiny_run, tmp_path, command, signals, seed):
    """A few trials of scripts/interrupt_campaign.py: SIGINT (twice, for train and sweep) to the
    process group at a random moment. Each ends within 2 s with status 130, leaves no process and
    no temporary file; train's message names the checkpoint of its last completed step, and
    --resume from it equals an uninterrupted run (the log and losses.npy included), for the MLP
    and for a model of layer classes (batch normalisation's running statistics); a sweep of large
    models does not hang on its workers."""
    import random

    c = campaign_module()
    rng = random.Random(seed)
    if command.startswith("train"):
        r = c.trial_train(tmp_path, rng, signals, "ready", True, command.partition("-")[2] or "lecture")
    elif command == "sweep":
        r = c.trial_sweep(tmp_path, rng, signals, "ready", jobs=2, target="group")
    else:
        (tmp_path / "keep").mkdir()
        r = c.trial_sample(tmp_path, rng, signals, "ready", tiny_run / "run", n=100_000)
    assert r["outcome"] == "interrupted" and r["code"] == 130, r
    assert r["problems"] == [], r


# --------------------------------------------------------------------------------------------- hunting
# Hypothesis on the command line's options and on schedule texts. MM_CARELESS_EXAMPLES scales the
# number of examples (the test suite runs a few dozen; a campaign, thousands).

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("MM_CARELESS_EXAMPLES", "1"))


def hunt(n: int):
    return settings(
        max_examples=n * EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=EXAMPLES == 1,  # the suite runs the same examples each time
        database=None,
    )


NUMBERS = ["-1", "0", "1", "2", "3", "1e-3", "0.5", "nan", "inf", "-inf", "1e400", "-0", "1_0", "x", "", " 3"]
RATE_PARTS = ["0.1", "0.01", "3e-3", "0", "-0.1", "nan", "inf", "1e400", "x", "", "1e5", "٣"]
STEP_PARTS = ["0", "1", "5", "100", "-3", "1e3", "1.5", "x", "", "10000000000000000000000"]


@st.composite
def schedule_texts(draw) -> str:
    kind = draw(st.sampled_from(["rate", "steps", "cosine", "raw"]))
    if kind == "rate":
        return draw(st.sampled_from(RATE_PARTS))
    if kind == "steps":
        parts = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(RATE_PARTS), st.sampled_from(["@", "", "@@"]), st.sampled_from(STEP_PARTS)
                ),
                min_size=1,
                max_size=4,
            )
        )
        return ":".join(a + b + c for a, b, c in parts)
    if kind == "cosine":
        opts = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["warmup", "min", "max", "", "warm up"]),
                    st.sampled_from(["=", "", "=="]),
                    st.sampled_from(STEP_PARTS + RATE_PARTS),
                ),
                max_size=3,
            )
        )
        head = draw(st.sampled_from(["cosine", "COSINE", "cosine ", "cos"]))
        return ":".join([head, draw(st.sampled_from(RATE_PARTS))] + [a + b + c for a, b, c in opts])
    return draw(st.text(alphabet="0123456789.@:e-+=xcosinewarmupINFaN ", max_size=24))


PYTHON_INTERNALS = ("unpack", "could not convert", "invalid literal", "object is not", "index out of range")


@hunt(300)
@given(text=schedule_texts(), steps=st.integers(1, 10**6))
def test_hunt_every_schedule_text_works_or_says_plainly_why_not(text, steps):
    """Any text: a schedule whose every rate is finite and >= 0, or a ValueError that quotes the
    text and says what is wrong in words, never in Python's."""
    import math

    try:
        f = mm.parse_schedule(text, steps)
        event("accepted")
    except ValueError as e:
        event("refused")
        msg = str(e)
        assert msg.startswith(f"cannot read the learning-rate schedule {text!r}: "), msg
        assert not any(w in msg for w in PYTHON_INTERNALS), msg
        return
    for s in {0, 1, steps // 2, steps - 1, steps}:
        rate = f(s)
        assert math.isfinite(rate) and rate >= 0, (text, s, rate)


TRAIN_OPTIONS = {
    "--steps": ["-1", "0", "1", "3", "x", "1e3", "10000000000000"],
    "--lr": None,  # schedule_texts
    "--n-hidden": ["0", "8", "8x8", "x", "8x", "-4", "100000x100000", "1x1x1x1x1x1x1x1x1x1"],
    "--n-embd": ["0", "2", "2000000"],
    "--block-size": ["0", "1", "4", "70000"],
    "--batch-size": ["0", "1", "2", "100000000"],
    "--samples": ["-1", "0", "2", "x", "10000000000000"],
    "--eval-every": ["-5", "0", "2", "x"],
    "--log-every": ["0", "1", "x"],
    "--diagnostics": ["0", "1", "2"],
    "--threads": ["0", "1", "64", "x"],
    "--momentum": ["-0.5", "0", "0.9", "1", "nan"],
    "--dropout": ["-0.1", "0", "0.5", "1", "inf"],
    "--weight-decay": ["-1", "0", "1e-3", "nan"],
    "--optimizer": ["sgd", "adamw", "adam"],
    "--dtype": ["float32", "float64", "float16"],
    "--init": ["lecture", "kaiming", "layers"],
    "--preset": ["lecture", "kaiming", "bn", "wavenet", "best", "nope"],
    "--seed": ["-1", "0", "18446744073709551616"],
    "--train-seed": ["-1", "0", "18446744073709551616"],
    "--split-seed": ["-3", "0", "x"],
    "-i": ["words.txt", "missing.txt", "empty.txt", "afolder", "pipe"],
    "-o": ["r", "afile", "afolder", "linked", "r/sub", ""],
}
FLAGS = ["--keep-best", "--no-keep-best", "--resume", "--no-plot", "--progress"]


def playground(root: pathlib.Path, words: pathlib.Path) -> None:
    """What the options may name: words, an empty file, a folder, a file, a link, a pipe."""
    import shutil

    shutil.copy(words, root / "words.txt")
    (root / "empty.txt").write_text("\n")
    (root / "afolder").mkdir()
    (root / "afile").write_text("x")
    os.symlink(root / "afile", root / "linked")
    os.mkfifo(root / "pipe")


@hunt(30)
@given(data=st.data())
def test_hunt_train_options_work_or_fail_before_anything_is_written(tiny_run, data, capsys):
    """Random options of `train`, the nastier values included: either the run works (a folder with
    its checkpoint, no temporary file), or exit status 2 with a one-line message and nothing
    written; or, for a run that diverges, exit status 1 with a checkpoint of its last finite step."""
    import tempfile

    keys = data.draw(st.lists(st.sampled_from(sorted(TRAIN_OPTIONS)), max_size=6, unique=True))
    args = ["train"]
    for k in keys:
        value = data.draw(schedule_texts()) if k == "--lr" else data.draw(st.sampled_from(TRAIN_OPTIONS[k]))
        args += [k, value]
    args += data.draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    args += [] if "--steps" in keys else ["--steps", "3"]
    args += [] if "-i" in keys else ["-i", "words.txt"]
    args += [] if "-o" in keys else ["-o", "r"]
    args += [] if "--samples" in keys else ["--samples", "0"]
    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        playground(root, tiny_run / "words.txt")
        before = tree_meta(root)
        code, err = run_main(args, root, capsys)
        event(f"exit status {code}")
        after = tree_meta(root)
        assert "Traceback" not in err, (args, err)
        assert not [p for p in after if ".tmp-" in p], (args, after)
        if code == 2:
            assert after == before, (args, err, set(after) ^ set(before))
            assert err.strip().splitlines()[-1].startswith("makemore-cpp train: error: "), (args, err)
        elif code == 1:
            assert "training diverged" in err, (args, err)
            assert any(p.endswith("model.npz") for p in after), (args, after)
        else:
            assert code == 0, (args, code, err)
            folder = args[args.index("-o") + 1]
            assert f"{folder}/model.npz" in after and f"{folder}/summary.json" in after, (args, after)


def tree_meta(root: pathlib.Path) -> dict[str, tuple]:
    """Every path under root with its kind and, for a file, its size and contents' hash."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", hashlib.sha1(p.read_bytes()).hexdigest())
        else:
            out[rel] = ("dir" if p.is_dir() else "other",)
    return out


OTHER_COMMANDS = {
    "sample": {
        "-n": ["-1", "0", "3", "x", "10000000000000"],
        "--temperature": ["-1", "0", "0.5", "nan", "inf", "1e-320"],
        "--top-k": ["0", "1", "100"],
        "--prefix": ["", "a", ".", "Z", "ab"],
        "--max-len": ["0", "1", "5", "2000000"],
        "--seed": ["-1", "0", "18446744073709551616"],
        "--threads": ["0", "64"],
    },
    "lr-find": {
        "--steps": ["1", "2", "5", "x"],
        "--lr-min": ["0", "1e-3", "nan", "-1", "2"],
        "--lr-max": ["1", "inf", "1e-4", "0"],
        "-o": ["x.png", "afolder", "linked", "afile/x.png", "pipe", ""],
        "--batch-size": ["0", "4", "100000000"],
        "--n-hidden": ["8", "0", "x"],
        "--preset": ["lecture", "bn", "wavenet", "best"],
    },
    "overfit": {
        "--words": ["0", "1", "3", "1000000"],
        "--max-steps": ["0", "1", "5"],
        "--lr": ["nan", "-1", "0.1", "1e30"],
        "--tol": ["-1", "0", "0.5", "inf"],
        "--n-hidden": ["8", "0"],
        "--preset": ["lecture", "bn", "wavenet", "best"],
    },
    "sweep": {
        "--lr": ["0.05,0.1", "0.1,-0.1", "nan", "0.1,1e30", ","],
        "--n-hidden": ["8", "8,9", "0", "8,x", "8,100000x100000"],
        "--block-size": ["2,3", "0", "x"],
        "--steps": ["0", "5", "x"],
        "-j": ["0", "1", "x"],
        "--threads-per-job": ["0", "1", "64"],
        "-o": ["s.csv", "afolder", "linked", "pipe", "afile/s.csv", ""],
        "--preset": ["lecture", "bn", "wavenet", "best"],
    },
    "diagnose": {"--rows": ["0", "1", "2", "x"], "-o": ["d", "afile", "linked", "pipe", ""]},
    "embeddings": {"-o": ["e.png", "afolder", "linked", "pipe", "afile/e.png", ""]},
}


@hunt(40)
@given(data=st.data())
def test_hunt_other_commands_work_or_fail_before_anything_is_written(tiny_run, data, capsys):
    """The same for sample, lr-find, overfit, sweep (in this process: one job), diagnose and
    embeddings. Exit status 1 is a failure of the work (a sweep's run failed, overfit did not
    memorise) and comes with its files written whole."""
    import shutil
    import tempfile

    command = data.draw(st.sampled_from(sorted(OTHER_COMMANDS)))
    source = data.draw(st.sampled_from(["run", "layers"]))  # (for the commands that read a run)
    opts = OTHER_COMMANDS[command]
    keys = data.draw(st.lists(st.sampled_from(sorted(opts)), max_size=4, unique=True))
    args = [command]
    for k in keys:
        args += [k, data.draw(st.sampled_from(opts[k]))]
    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        playground(root, tiny_run / "words.txt")
        if command in ("sample", "diagnose", "embeddings"):
            shutil.copytree(tiny_run / source, root / "run")
            args.insert(1, "run")
        else:
            args += ["-i", "words.txt"]
            if command in ("lr-find", "sweep") and "-o" not in keys:
                args += ["-o", "out.png" if command == "lr-find" else "s.csv"]
            if command == "sweep":
                args += [] if "-j" in keys else ["-j", "1"]
                args += [] if "--steps" in keys else ["--steps", "5"]
            if command == "overfit":
                args += [] if "--max-steps" in keys else ["--max-steps", "5"]
                args += [] if "--n-hidden" in keys else ["--n-hidden", "8"]
        before = tree_meta(root)
        code, err = run_main(args, root, capsys)
        event(f"{command}: exit status {code}")
        after = tree_meta(root)
        assert "Traceback" not in err, (args, err)
        assert not [p for p in after if ".tmp-" in p], (args, after)
        if code == 2:
            assert after == before, (args, err, set(after) ^ set(before))
            assert err.strip().splitlines()[-1].startswith(f"makemore-cpp {command}: error: "), (args, err)
        else:
            assert code == 0 or (code == 1 and command in ("sweep", "overfit")), (args, code, err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX")
def test_a_run_folder_is_trained_by_one_process_at_a_time(tiny_run, tmp_path):
    """Two `train` on one folder at once interleaved their checkpoints and logs: the second is now
    refused while the first holds the folder, and changes nothing in it."""
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "makemore_cpp", "train", "-i", str(tiny_run / "words.txt"), "-o", "r"]
    first = subprocess.Popen(
        [*args, "--steps", "10000000", "--samples", "0", "--no-plot", "--eval-every", "0"],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in first.stdout:
            if line.startswith("  writing"):
                break
        time.sleep(0.3)
        before = tree_meta(tmp_path / "r")
        # (no checkpoint yet, with --eval-every 0) a new run in the same folder
        p = subprocess.run(
            [*args, "--steps", "5"], cwd=tmp_path, env=child_env(), capture_output=True, text=True
        )
        assert p.returncode == 2 and "another process is training the run in r" in p.stderr, p.stderr
        assert tree_meta(tmp_path / "r").keys() == before.keys()
    finally:
        first.send_signal(2)
        first.communicate(timeout=60)
    assert first.returncode == 130
    at = mm.checkpoint.load(tmp_path / "r" / "model.npz").state.step  # (the interrupt's checkpoint)
    p = subprocess.run(
        [*args, "--resume", "--samples", "0", "--no-plot", "--steps", str(at + 5)],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr  # the folder is free again


def test_a_run_folder_is_checked_again_once_it_is_held(tiny_run, tmp_path):
    """Between the checks of the folder and its lock, another process may finish a run there: a
    new run then finds a checkpoint, a resumed one a checkpoint other than the one it read, and
    each is refused instead of overwriting it."""
    import shutil

    from makemore_cpp.cli import CLIError
    from makemore_cpp.cli.run import Run

    words = tiny_run / "words.txt"
    (tmp_path / "r").mkdir()
    run = Run.new(tmp_path / "r", {"steps": 5}, words, None)
    shutil.copy(tiny_run / "run" / "model.npz", tmp_path / "r" / "model.npz")  # (the other process)
    with pytest.raises(CLIError, match="already holds a run"):
        run.lock()
    assert not run.holds_lock()

    run, _, _ = Run.resume(tmp_path / "r", {}, None, None, print)
    shutil.copy(tiny_run / "run" / "model.npz", tmp_path / "copy.npz")
    os.replace(tmp_path / "copy.npz", tmp_path / "r" / "model.npz")
    with pytest.raises(CLIError, match="model.npz changed while it was read"):
        run.lock()
    run, _, _ = Run.resume(tmp_path / "r", {}, None, None, print)
    run.lock()
    assert run.holds_lock()
    run.unlock()


RESUME_OPTIONS = {
    **{k: val for k, val in TRAIN_OPTIONS.items() if k != "-o"},
    "--steps": ["-1", "0", "10", "20", "23", "x", "10000000000000"],
    "-i": None,  # (drawn in the test: the run's own input among others)
}


@hunt(20)
@given(data=st.data())
def test_hunt_resume_goes_on_or_changes_nothing(tiny_run, data, capsys):
    """`train --resume` of a finished run (an MLP, or a model of layer classes) with random options:
    either it goes on to the total asked for, or exit status 2 with a one-line message, and the
    run's folder is as it was, byte for byte."""
    import shutil
    import tempfile

    source = data.draw(st.sampled_from(["run", "layers"]))
    keys = data.draw(st.lists(st.sampled_from(sorted(RESUME_OPTIONS)), max_size=4, unique=True))
    args = ["train", "--resume", "-o", "r"]
    for k in keys:
        if k == "--lr":
            value = data.draw(st.sampled_from(["0.1@0:0.01@100000", "0.1", "nan"]))
        elif k == "-i":
            value = data.draw(
                st.sampled_from([str(tiny_run / "words.txt"), "words.txt", "missing.txt", "pipe"])
            )
        else:
            value = data.draw(st.sampled_from(RESUME_OPTIONS[k]))
        args += [k, value]
    args += data.draw(st.lists(st.sampled_from(FLAGS), max_size=2, unique=True))
    args += [] if "--samples" in keys else ["--samples", "0"]
    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        playground(root, tiny_run / "words.txt")
        shutil.copytree(tiny_run / source, root / "r")
        before = tree_meta(root)
        code, err = run_main(args, root, capsys)
        event(f"{source}: exit status {code}")
        after = tree_meta(root)
        assert "Traceback" not in err, (args, err)
        assert not [p for p in after if ".tmp-" in p], (args, after)
        if code == 2:
            assert after == before, (args, err, set(after) ^ set(before))
            assert err.strip().splitlines()[-1].startswith("makemore-cpp train: error: "), (args, err)
        else:
            assert code == 0, (args, code, err)
            total = int(args[args.index("--steps") + 1]) if "--steps" in keys else 20
            assert mm.checkpoint.load(root / "r" / "model.npz").state.step == total, (args, err)
