"""The command line, run as a user runs it: ``python -m makemore_cpp <command>`` in a subprocess,
with real files in a temporary folder; then its outputs are checked (checkpoints load, log lines
parse, PNGs decode, CSV rows match the grid, --resume continues the run exactly, samples are
marked correctly)."""

from __future__ import annotations

import ast
import csv
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import cli
from makemore_cpp.checkpoint import load

PKG_PARENT = pathlib.Path(mm.__file__).resolve().parents[1]


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PKG_PARENT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("MPLBACKEND", None)
    return env


def run(*args: str, cwd: os.PathLike, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m makemore_cpp args...`` in ``cwd``; with ``ok`` the exit status must be 0."""
    p = subprocess.run(
        [sys.executable, "-m", "makemore_cpp", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if ok and p.returncode != 0:
        raise AssertionError(
            f"makemore-cpp {' '.join(map(str, args))} exited {p.returncode}\n"
            f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


def png_title(path: os.PathLike) -> str:
    """The PNG's tEXt 'Title' chunk (the plots write their title there)."""
    data = pathlib.Path(path).read_bytes()
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Title\0"):
            return body[6:].decode("latin-1")
        if kind == b"iTXt" and body.startswith(b"Title\0"):
            rest = body[6:]
            compressed = rest[0]
            text = rest[2:].split(b"\0", 2)[2]
            return (zlib.decompress(text) if compressed else text).decode("utf-8")
        pos += 12 + length
    return ""


def check_png(path: os.PathLike, title_has: str = "") -> np.ndarray:
    """A valid PNG of a non-trivial size with something drawn on it; returns its pixels."""
    path = pathlib.Path(path)
    assert path.exists(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 300, (width, height)
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.05, "the image is (nearly) blank"
    if title_has:
        assert title_has in png_title(path), png_title(path)
    return img


def read_log(path: os.PathLike) -> list[dict]:
    lines = pathlib.Path(path).read_text().splitlines()
    assert lines
    return [json.loads(line) for line in lines]


def step_records(records: list[dict]) -> list[dict]:
    return [r for r in records if "loss" in r]


SMALL = ["--n-hidden", "32", "--eval-every", "200", "--lr", "0.1@0:0.05@400", "--log-every", "50"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> pathlib.Path:
    """A 600-step run of a small model on the bundled names, with a 2-D embedding."""
    work = tmp_path_factory.mktemp("small")
    run("train", "-o", work / "run", "--steps", 600, "--n-embd", 2, *SMALL, "--samples", 5, cwd=work)
    return work / "run"


# ------------------------------------------------------------------------------------------------ help


def test_help_lists_every_subcommand(tmp_path):
    p = run("--help", cwd=tmp_path)
    for command in ("train", "sample", "lr-find", "sweep", "embeddings", "overfit", "bench"):
        assert re.search(rf"^\s+{command}\b", p.stdout, re.M), command
    bare = run(cwd=tmp_path)
    assert "makemore-cpp train" in bare.stdout


@pytest.mark.parametrize(
    "command, options",
    [
        (
            "train",
            [
                "--input",
                "--preset",
                "--block-size",
                "--n-embd",
                "--n-hidden",
                "--batch-size",
                "--steps",
                "--lr",
                "--seed",
                "--threads",
                "--dtype",
                "--workdir",
                "--resume",
            ],
        ),
        ("sample", ["-n", "--seed", "--temperature", "--top-k", "--prefix", "--unique"]),
        ("lr-find", ["--output", "--steps", "--lr-min", "--lr-max"]),
        ("sweep", ["--block-size", "--n-embd", "--n-hidden", "--batch-size", "--lr", "--jobs", "--output"]),
        ("embeddings", ["--output"]),
        ("overfit", ["--words", "--max-steps", "--lr"]),
    ],
)
def test_subcommand_help(command, options, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: makemore-cpp {command}")
    for option in options:
        assert option in out, (command, option)


def test_bench_help(tmp_path):
    p = run("bench", "--help", cwd=tmp_path)
    assert "usage: makemore-cpp bench" in p.stdout


# ------------------------------------------------------------------------------------------------ train


def test_train_no_arguments_is_the_lecture_run(tmp_path):
    """The README's main job: the lecture's 200,000 steps on the bundled names, in seconds."""
    p = run("train", cwd=tmp_path, timeout=300)
    m = re.search(r"loss\s+train (\d\.\d+)\s+dev (\d\.\d+)\s+test (\d\.\d+)", p.stdout)
    assert m, p.stdout
    train, dev, test = map(float, m.groups())
    assert 2.05 < train < 2.25 and 2.1 < dev < 2.3 and 2.1 < test < 2.3, (train, dev, test)
    samples = p.stdout.split("20 samples:\n")[1].splitlines()[:20]
    assert len(samples) == 20 and all(
        re.fullmatch(r"  [a-z]+ +(in train|in dev|in test|new)", s) for s in samples
    ), samples
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and str(runs[0].relative_to(tmp_path)) in p.stdout
    ck = load(runs[0] / "model.npz")
    assert ck.state.step == 200_000 and ck.extra["total_steps"] == 200_000
    assert ck.model.config()["n_hidden"] == [200] and ck.extra["lr"] == "0.1@0:0.01@100000"
    records = read_log(runs[0] / "log.jsonl")
    assert records[-1]["event"] == "end" and records[-1]["dev_loss"] == pytest.approx(dev, abs=1e-4)
    assert [r["step"] for r in records if "dev_loss" in r and "event" not in r] == list(
        range(10_000, 200_001, 10_000)
    )
    check_png(runs[0] / "loss.png", "200,000 steps")
    # not a terminal: no progress bar
    assert "step/s" not in p.stderr and "%|" not in p.stderr, p.stderr


def test_train_writes_checkpoint_log_and_plot(small_run):
    records = read_log(small_run / "log.jsonl")
    start, end = records[0], records[-1]
    assert start["event"] == "start" and start["total_steps"] == 600 and start["settings"]["n_hidden"] == 32
    steps = step_records(records)
    assert [r["step"] for r in steps] == list(range(50, 601, 50))
    for r in steps:
        assert set(r) == {"step", "loss", "loss_mean", "lr", "elapsed"}
        assert np.isfinite(r["loss"]) and r["loss"] > 0
        assert r["lr"] == (0.1 if r["step"] <= 400 else 0.05)  # record n is step n-1 of the lecture's loop
    elapsed = [r["elapsed"] for r in records if "elapsed" in r]
    assert elapsed == sorted(elapsed)
    assert [r["step"] for r in records if "dev_loss" in r and "event" not in r] == [200, 400, 600]
    assert end["event"] == "end" and end["step"] == 600

    losses = np.load(small_run / "losses.npy")
    assert losses.shape == (600,)
    for r in steps:
        assert losses[r["step"] - 1] == pytest.approx(r["loss"], rel=1e-6)
        assert np.mean(losses[r["step"] - 50 : r["step"]]) == pytest.approx(r["loss_mean"], rel=1e-5)

    ck = load(small_run / "model.npz")
    assert ck.state.step == 600 and ck.model.n_embd == 2 and ck.model.n_hidden == (32,)
    assert ck.extra["input"] is None and ck.extra["split_seed"] == 42 and ck.extra["lr"] == "0.1@0:0.05@400"
    # The checkpoint's model gives the losses the run reported.
    words = mm.load_names()
    tr, dev, te = mm.split_words(words, seed=42)
    summary = json.loads((small_run / "summary.json").read_text())
    for name, part in (("train", tr), ("dev", dev), ("test", te)):
        X, Y = mm.build_dataset(part, ck.model.vocab, 3)
        assert ck.model.loss(X, Y) == pytest.approx(summary["losses"][name], abs=1e-12)
        assert end[f"{name}_loss"] == summary["losses"][name]
    check_png(small_run / "loss.png", "600 steps")


def test_diagnostics_of_a_resumed_run_equal_the_run_in_one_go(tmp_path):
    """--diagnostics: 300 steps, then --resume to 600, writes the same diagnostics.json (byte for
    byte: records encoded once as the checkpoints append them) and update ratios as 600 steps
    straight, and the file is json.dumps of what Diagnostics holds."""
    args = (*SMALL, "--diagnostics", 50, "--samples", 0, "--no-plot")
    run("train", "-o", tmp_path / "straight", "--steps", 600, *args, cwd=tmp_path)
    run("train", "-o", tmp_path / "split", "--steps", 300, *args, cwd=tmp_path)
    run("train", "-o", tmp_path / "split", "--resume", "--steps", 600, *args, cwd=tmp_path)
    a, b = (mm.diagnostics.Diagnostics.load(tmp_path / d) for d in ("straight", "split"))
    assert [s for s, _ in a.records] == list(range(0, 600, 50))
    assert a.records == b.records
    assert a.steps.tolist() == b.steps.tolist() == list(range(600))
    assert a.update_ratio.tobytes() == b.update_ratio.tobytes()
    text = (tmp_path / "straight" / "diagnostics.json").read_text()
    assert text == (tmp_path / "split" / "diagnostics.json").read_text()
    doc = {"every": 50, "names": a.names, "records": [{"step": s, **r} for s, r in a.records]}
    assert text == json.dumps(doc)


def test_resume_continues_the_same_run(tmp_path):
    """300 steps, then --resume to 600, equals 600 steps straight: the step count, the log and the
    parameters. Records a crash left after the checkpoint are dropped."""
    run(
        "train",
        "-o",
        tmp_path / "straight",
        "--steps",
        600,
        *SMALL,
        "--samples",
        0,
        "--no-plot",
        cwd=tmp_path,
    )
    run("train", "-o", tmp_path / "split", "--steps", 300, *SMALL, "--samples", 0, "--no-plot", cwd=tmp_path)
    assert load(tmp_path / "split" / "model.npz").state.step == 300
    with open(tmp_path / "split" / "log.jsonl", "a") as f:  # as if a run died after its checkpoint
        f.write(json.dumps({"step": 350, "loss": 123.0, "lr": 0.1, "elapsed": 9.0}) + "\n")
    p = run("train", "-o", tmp_path / "split", "--resume", "--steps", 600, "--samples", 3, cwd=tmp_path)
    assert "from step 300" in p.stdout and "step 600 of 600" in p.stdout

    a, b = load(tmp_path / "straight" / "model.npz"), load(tmp_path / "split" / "model.npz")
    assert b.state.step == 600 and b.extra["total_steps"] == 600
    for k, val in a.model.get_params().items():
        np.testing.assert_array_equal(val, b.model.get_params()[k])
    ra, rb = read_log(tmp_path / "straight" / "log.jsonl"), read_log(tmp_path / "split" / "log.jsonl")
    sa, sb = step_records(ra), step_records(rb)
    assert [r["step"] for r in sb] == list(range(50, 601, 50))  # continued, without the stale record
    assert [(r["step"], r["loss"], r["lr"]) for r in sa] == [(r["step"], r["loss"], r["lr"]) for r in sb]
    assert [e["event"] for e in rb if "event" in e] == ["start", "end", "resume", "end"]
    assert ra[-1]["dev_loss"] == rb[-1]["dev_loss"] and ra[-1]["train_loss"] == rb[-1]["train_loss"]
    assert np.array_equal(
        np.load(tmp_path / "straight" / "losses.npy"), np.load(tmp_path / "split" / "losses.npy")
    )
    check_png(tmp_path / "split" / "loss.png", "600 steps")

    # A finished run has nothing left to do; settings cannot change on resume; an empty folder is an error.
    p = run("train", "-o", tmp_path / "split", "--resume", "--samples", 0, "--no-plot", cwd=tmp_path)
    assert "nothing to train" in p.stdout
    p = run("train", "-o", tmp_path / "split", "--resume", "--n-hidden", 64, cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "n_hidden" in p.stderr
    p = run("train", "-o", tmp_path / "nothing", "--resume", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "nothing to resume" in p.stderr
    p = run("train", "-o", tmp_path / "straight", "--steps", 10, cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "--resume" in p.stderr


def test_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Ctrl-C stops a run (exit status 130, saying how to continue) with a checkpoint of its last
    completed step, not only of the last scheduled one; --resume goes on from there and ends where
    a run that was never stopped ends."""
    import signal
    import time

    opts = ["--n-hidden", "32", "--eval-every", "2000", "--samples", "0", "--no-plot"]
    p = subprocess.Popen(
        [sys.executable, "-m", "makemore_cpp", "train", "-o", "a", "--steps", "5000000", *opts],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (tmp_path / "a" / "model.npz").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert "--resume -o a" in err
    at = load(tmp_path / "a" / "model.npz").state.step
    assert 2000 <= at < 5_000_000 and f"is at step {at:,} of 5,000,000" in err
    total = str(at + 1000)
    run("train", "-o", "a", "--resume", "--steps", total, cwd=tmp_path)
    run("train", "-o", "b", "--steps", total, *opts, cwd=tmp_path)
    a, b = load(tmp_path / "a" / "model.npz"), load(tmp_path / "b" / "model.npz")
    assert a.state.step == b.state.step == at + 1000
    for k, val in b.model.get_params().items():
        np.testing.assert_array_equal(a.model.get_params()[k], val)
    ra, rb = (step_records(read_log(tmp_path / d / "log.jsonl")) for d in "ab")
    assert [(r["step"], r["loss"]) for r in ra] == [(r["step"], r["loss"]) for r in rb]


def test_train_on_a_file_with_keep_best_and_adamw(tmp_path):
    words = mm.load_names()[:3000]
    (tmp_path / "w.txt").write_text("\n".join(words) + "\n")
    p = run(
        "train",
        "-i",
        "w.txt",
        "-o",
        "run",
        "--steps",
        400,
        "--block-size",
        4,
        "--n-embd",
        6,
        "--n-hidden",
        "24x16",
        "--batch-size",
        64,
        "--optimizer",
        "adamw",
        "--lr",
        "cosine:3e-3:warmup=50",
        "--eval-every",
        100,
        "--keep-best",
        "--dtype",
        "float64",
        "--seed",
        7,
        "--threads",
        1,
        "--samples",
        4,
        cwd=tmp_path,
    )
    assert "3,000 words from" in p.stdout
    ck = load(tmp_path / "run" / "model.npz")
    assert ck.model.n_hidden == (24, 16) and ck.model.block_size == 4 and ck.model.dtype == "float64"
    assert ck.extra["input"] == str(tmp_path / "w.txt") and ck.state.settings["optimizer"] == "adamw"
    assert set(ck.state.moments()) >= {"m/C", "v/W3"}
    best = load(tmp_path / "run" / "best.npz")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    dev = [r for r in read_log(tmp_path / "run" / "log.jsonl") if "dev_loss" in r and "event" not in r]
    assert summary["best"]["dev_loss"] == min(r["dev_loss"] for r in dev)
    assert best.extra["best"]["step"] == summary["best"]["step"]
    s = run("sample", "run", "-n", 3, cwd=tmp_path)  # a run folder with best.npz samples from the best model
    assert "best.npz" in s.stdout


def test_train_rejects_bad_settings(tmp_path):
    p = run("train", "--lr", "0.1@5", "--steps", 10, "-o", "x", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "schedule" in p.stderr and not (tmp_path / "x").exists()
    p = run("train", "-i", "missing.txt", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "missing.txt" in p.stderr
    p = run("train", "--n-hidden", "abc", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "n-hidden" in p.stderr


def test_progress_bar_on_a_terminal(tmp_path):
    """tqdm draws its bar (steps/s, running loss) when stderr is a terminal."""
    pty = pytest.importorskip("pty")
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    chunks: list[bytes] = []

    def reader() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "makemore_cpp",
            "train",
            "-o",
            "run",
            "--steps",
            "60000",
            "--samples",
            "0",
            "--no-plot",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=slave,
        timeout=120,
    )
    os.close(slave)
    t.join(5)
    os.close(master)
    assert p.returncode == 0
    bar = b"".join(chunks).decode("utf-8", "replace")
    assert "step/s" in bar and "loss=" in bar, bar


# ------------------------------------------------------------------------------------------------ sample


def test_sample_marks_names_as_makemore_does(tmp_path):
    words = mm.load_names()[:400]
    (tmp_path / "few.txt").write_text("\n".join(words))
    run(
        "train",
        "-i",
        "few.txt",
        "-o",
        "run",
        "--steps",
        10_000,
        "--n-hidden",
        64,
        "--init",
        "kaiming",
        "--lr",
        0.1,
        "--samples",
        0,
        "--no-plot",
        cwd=tmp_path,
    )
    p = run("sample", "run", "-n", 200, "--seed", 3, cwd=tmp_path)
    lines = [line for line in p.stdout.splitlines() if line.startswith("  ")]
    assert len(lines) == 200
    tr, dev, te = mm.split_words(words, seed=42)
    marks = {}
    for line in lines:
        name, mark = re.fullmatch(r"  (\S+) +(in train|in dev|in test|new)", line).groups()
        want = "in train" if name in tr else "in dev" if name in dev else "in test" if name in te else "new"
        assert mark == want, (name, mark, want)
        marks[mark] = marks.get(mark, 0) + 1
    assert marks.get("in train", 0) > 20 and marks.get("new", 0) > 0, marks
    summary = p.stdout.strip().splitlines()[-1]
    assert summary.startswith("200 names:") and f"{marks.get('in train', 0)} in train" in summary

    # The same seed draws the same names; --names-only prints them alone; the first n of a larger draw agree.
    again = run(
        "sample", "run/model.npz", "-n", 200, "--seed", 3, "--names-only", cwd=tmp_path
    ).stdout.split()
    assert again == [line.split()[0] for line in lines]
    assert (
        run("sample", "run", "-n", 5, "--seed", 3, "--names-only", cwd=tmp_path).stdout.split() == again[:5]
    )
    # --unique: distinct names, as many as asked.
    uniq = run(
        "sample", "run", "-n", 30, "--unique", "--names-only", "--temperature", 0.5, cwd=tmp_path
    ).stdout.split()
    assert len(uniq) == 30 and len(set(uniq)) == 30
    # --prefix and --top-k
    pre = run(
        "sample", "run", "-n", 10, "--prefix", "ma", "--top-k", 3, "--names-only", cwd=tmp_path
    ).stdout.split()
    assert len(pre) == 10 and all(n.startswith("ma") for n in pre)
    # temperature 0: always the most likely, so --unique finds only one and says so
    one = run("sample", "run", "-n", 3, "--temperature", 0, "--unique", cwd=tmp_path)
    assert "only 1 distinct" in one.stderr
    # no path: the newest run under ./runs
    run("train", "--steps", 100, "--samples", 0, "--no-plot", "--n-hidden", 8, cwd=tmp_path)
    newest = run("sample", "-n", 2, cwd=tmp_path)
    assert newest.stdout.startswith("runs" + os.sep)


def test_mark_samples_order_and_parts():
    splits = {"train": ["ann", "bob"], "dev": ["bob", "cat"], "test": ["dan"]}
    assert cli.mark_samples(["bob", "cat", "dan", "eve"], splits) == ["in train", "in dev", "in test", "new"]


def test_bad_checkpoints_give_clear_errors(tmp_path, small_run):
    data = (small_run / "model.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    p = run("sample", "cut.npz", cwd=tmp_path, ok=False)
    assert (
        p.returncode == 2 and "cut.npz" in p.stderr and ("truncated" in p.stderr or "corrupt" in p.stderr)
    ), p.stderr
    # a checkpoint from another format version
    with np.load(small_run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    meta["version"] = 99
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    p = run("sample", "future.npz", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "version 99" in p.stderr, p.stderr
    p = run("sample", "nowhere", cwd=tmp_path, ok=False)
    assert p.returncode == 2 and "nowhere" in p.stderr


# ------------------------------------------------------------------------------------------------ lr-find


def test_lr_find(tmp_path):
    p = run("lr-find", "-o", "lr.png", "--n-embd", 2, "--n-hidden", 100, cwd=tmp_path)
    m = re.search(r"suggested learning rate: ([0-9.e-]+)\n  how: (.+)", p.stdout)
    assert m, p.stdout
    lr = float(m.group(1))
    assert 1e-3 <= lr <= 1 and "lowest point" in m.group(2)
    check_png(tmp_path / "lr.png", "Learning-rate sweep")

    # The sweep itself: the lecture's 1,000 rates, 10**linspace(-3, 0, 1000), one step each.
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words[:5000], vocab)
    res = cli.lr_find(mm.MLP(vocab, n_embd=2, n_hidden=100, seed=1), X, Y)
    assert len(res.losses) == 1000
    np.testing.assert_allclose(res.lre, np.linspace(-3, 0, 1000))
    np.testing.assert_allclose(res.lrs, 10 ** np.linspace(-3, 0, 1000))
    replay = mm.train(mm.MLP(vocab, n_embd=2, n_hidden=100, seed=1), X, Y, 1000, lr=res.lrs)
    np.testing.assert_array_equal(replay.loss, res.losses)
    assert res.suggested_lr in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def test_suggest_lr_picks_the_bottom_of_the_curve():
    lre = np.linspace(-3, 0, 1000)
    loss = (lre + 1.3) ** 2 + 2.0  # lowest at log10(lr) = -1.3, lr 0.05
    lr, how, smoothed = cli.suggest_lr(lre, loss)
    assert lr == 0.05 and "0.05" in how and len(smoothed) == 1000
    diverged = loss.copy()
    diverged[800:] = np.nan
    assert cli.suggest_lr(lre, diverged)[0] == 0.05


# ------------------------------------------------------------------------------------------------ sweep


def test_sweep_grid_across_processes(tmp_path):
    p = run(
        "sweep",
        "--n-embd",
        "2,4",
        "--n-hidden",
        "16,32",
        "--steps",
        300,
        "--jobs",
        2,
        "-o",
        "grid.csv",
        cwd=tmp_path,
    )
    with open(tmp_path / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert sorted((int(r["n_embd"]), int(r["n_hidden"])) for r in rows) == [
        (2, 16),
        (2, 32),
        (4, 16),
        (4, 32),
    ]
    devs = [float(r["dev_loss"]) for r in rows]
    assert devs == sorted(devs)
    for r in rows:
        E, H, V = int(r["n_embd"]), int(r["n_hidden"]), 27
        assert int(r["params"]) == V * E + 3 * E * H + H + H * V + V
        assert r["block_size"] == "3" and r["batch_size"] == "32" and r["steps"] == "300"
        assert np.isfinite(float(r["train_loss"])) and float(r["seconds"]) >= 0
    table = [line for line in p.stdout.splitlines() if re.match(r"\s+\d+\s+3\s+\d+\s+\d+\s+32\s", line)]
    assert len(table) == 4 and "2 process(es)" in p.stdout
    # A row is the same run as fit() with those settings.
    res = mm.fit(preset="lecture", steps=300, n_embd=2, n_hidden=16, eval_every=0)
    row = next(r for r in rows if (r["n_embd"], r["n_hidden"]) == ("2", "16"))
    assert float(row["dev_loss"]) == pytest.approx(res.losses["dev"], abs=1e-6)


def test_sweep_python_function_one_job(tmp_path):
    rows = cli.run_sweep(
        {"lr": ["0.05", "0.2"], "batch_size": [16]},
        output=tmp_path / "s.csv",
        jobs=1,
        steps=200,
        n_hidden=8,
        quiet=True,
    )
    assert [r["lr"] for r in rows] != [] and {r["lr"] for r in rows} == {"0.05", "0.2"}
    assert all(r["batch_size"] == 16 and r["n_hidden"] == "8" for r in rows)
    with pytest.raises(cli.CLIError):
        cli.run_sweep({"dropout": [0.1]}, output=tmp_path / "t.csv", quiet=True)


# ------------------------------------------------------------------------------------------------ embeddings


def test_embeddings_2d_and_pca(tmp_path, small_run):
    p = run("embeddings", small_run, "-o", "e2.png", cwd=tmp_path)
    assert "two columns" in p.stdout
    check_png(tmp_path / "e2.png", "n_embd = 2")
    run(
        "train",
        "-o",
        "wide",
        "--steps",
        100,
        "--n-embd",
        5,
        "--n-hidden",
        8,
        "--samples",
        0,
        "--no-plot",
        cwd=tmp_path,
    )
    p = run("embeddings", "wide", cwd=tmp_path)
    assert "PCA" in p.stdout
    check_png(tmp_path / "wide" / "embeddings.png", "PCA")


def test_plots_explain_how_to_install_matplotlib(tmp_path, small_run):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from makemore_cpp.cli import main\n"
        f"sys.exit(main(['embeddings', {str(small_run)!r}, '-o', 'x.png']))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert p.returncode == 1 and 'pip install "makemore_cpp[plot]"' in p.stderr, p.stderr
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------------ overfit


def test_overfit_reaches_the_floor(tmp_path):
    p = run("overfit", "--n-hidden", 64, cwd=tmp_path)
    assert "PASS" in p.stdout
    m = re.search(r"-> (\d+\.\d+) after ([\d,]+) steps", p.stdout)
    floor = float(re.search(r"lowest possible on these examples: (\d+\.\d+)", p.stdout).group(1))
    assert float(m.group(1)) - floor <= 0.01 + 1e-4 and floor > 0
    p = run("overfit", "--n-hidden", 64, "--max-steps", 1, cwd=tmp_path, ok=False)
    assert p.returncode == 1 and "FAIL" in p.stdout


def test_loss_floor():
    X = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]])
    Y = np.array([1, 2, 3, 1])
    # context ... is followed by 1, 2, 1: -(2 log(2/3) + log(1/3)) / 4
    assert cli.loss_floor(X, Y) == pytest.approx(-(2 * np.log(2 / 3) + np.log(1 / 3)) / 4)
    assert cli.loss_floor(np.arange(6).reshape(2, 3), np.array([4, 5])) == 0.0


# ------------------------------------------------------------------------------------- Python API, stubs


def test_python_functions(tmp_path):
    res = cli.run_train(tmp_path / "r", steps=300, n_hidden=16, samples=3, quiet=True)
    assert res.step == 300 and set(res.losses) == {"train", "dev", "test"} and len(res.samples) == 3
    assert set(res.files) >= {"checkpoint", "log", "plot", "summary"}
    got = cli.run_sample(tmp_path / "r", 4, quiet=True)
    assert [n for n, _ in got] == res.model.sample(4)
    out = cli.run_embeddings(tmp_path / "r", quiet=True)
    assert out.endswith("embeddings.png")
    ov = cli.run_overfit(words=3, n_hidden=32, quiet=True)
    assert ov.passed and ov.rows == sum(len(w) + 1 for w in mm.load_names()[:3])


def _runtime_arity(fn) -> int | None:
    """How many arguments a pybind11 function takes, from the signature line of its docstring."""
    first = (fn.__doc__ or "").splitlines()[0] if fn.__doc__ else ""
    if "(" not in first:
        return None
    depth, count, inside = 0, 0, first[first.index("(") + 1 :]
    for ch in inside:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            count += 1
    return count + 1 if inside.strip()[0] != ")" else 0


def test_stubs_cover_the_extension():
    """_core.pyi names every class, method, function and constant of the extension, with as many
    arguments as the bindings take."""
    stub = pathlib.Path(mm._core.__file__).with_name("_core.pyi")
    assert stub.exists() and stub.with_name("py.typed").exists()
    tree = ast.parse(stub.read_text())
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    top |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert top == {k for k in dir(mm._core) if not k.startswith("_")}

    def check(fn_node, runtime_fn, where):
        args = fn_node.args
        n = len(args.posonlyargs) + len(args.args)
        want = _runtime_arity(runtime_fn)
        if want is not None and not any(
            isinstance(d, ast.Name) and d.id == "property" for d in fn_node.decorator_list
        ):
            assert n == want, f"{where}: the stub takes {n} arguments, the extension {want}"

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            check(node, getattr(mm._core, node.name), node.name)
        if isinstance(node, ast.ClassDef):
            cls = getattr(mm._core, node.name)
            names = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            names |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
            runtime = {k for k in dir(cls) if not k.startswith("_")}
            assert names - {"__init__"} == runtime, node.name
            for fn in (n for n in node.body if isinstance(n, ast.FunctionDef)):
                check(fn, getattr(cls, fn.name), f"{node.name}.{fn.name}")


def test_public_functions_have_docstrings():
    from makemore_cpp import plots

    for module in (cli, plots):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                assert obj.__doc__ and obj.__doc__.strip(), f"{module.__name__}.{name}"
