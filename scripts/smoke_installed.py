"""Smoke test of an installed makemore_cpp (a wheel or an sdist, scripts/check_dist.sh).

    python scripts/smoke_installed.py                      # with the environment's python, anywhere
    python scripts/smoke_installed.py --record OUT.json    # a short run's results, for --compare
    python scripts/smoke_installed.py --compare NATIVE.json EMULATED.json

Needs only what the package itself needs (NumPy, tqdm): no PyTorch, no test extras. Checks that the
package is the installed one (not a source tree on the path), and then, on the installed files:
import; a 1,000-step training run on the bundled names (the part-3 initialisation) on every instruction
set this CPU has, the best one chosen at import and the generic one forced: the step losses the
same on every path to 1e-9 relative in float64 and 1e-4 in float32 (the README's trajectory
tolerances), the dev loss from ln 27 to below 2.6; sampling; and the
command line: ``makemore-cpp --help``, ``python -m makemore_cpp --help``, a short ``train`` and a
``sample`` from its run folder. Exits non-zero with the failed rule on the first failure.

--record and --compare check a CPU without AVX: scripts/check_dist.sh records a short run (import,
200 steps in float64 and float32, sampling) natively with MAKEMORE_CPP_ISA=generic and again on an
emulated CPU without AVX (qemu-x86_64 -cpu Nehalem), where the core must choose the generic kernels
by itself and agree with the native generic run: step losses within 1e-9 relative in float64 and
1e-4 in float32 (not bit for bit: glibc's exp and log, which the core calls, are chosen by CPU too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np


def check(ok: bool, rule: str) -> None:
    if not ok:
        sys.exit(f"smoke: FAILED: {rule}")


def installed_package():
    import makemore_cpp as mm

    site = os.path.realpath(sysconfig.get_paths()["platlib"])
    where = os.path.realpath(mm.__file__)
    check(
        where.startswith(site + os.sep),
        f"makemore_cpp must come from this environment's site-packages ({site}), not {where}",
    )
    core = os.path.realpath(mm._core.__file__)
    check(core.startswith(site + os.sep), f"the extension must be installed in {site}, not {core}")
    return mm


def run(args: list[str], cwd: str) -> str:
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"{' '.join(args)} must exit 0 (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def record(path: str) -> int:
    """A short run's results, in a JSON file (see --compare)."""
    mm = installed_package()
    supported = [n for n in ("generic", "avx2", "avx512") if mm._core.isa_supported(n)]
    out = {"isa": mm.get_isa(), "supported": supported, "losses": {}, "names": {}}
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(mm.split_words(words)[0], vocab, block_size=3)
    for dtype in ("float64", "float32"):
        model = mm.MLP(vocab, block_size=3, n_embd=10, n_hidden=200, dtype=dtype, seed=1, init="kaiming")
        out["losses"][dtype] = [float(x) for x in mm.train(model, X, Y, steps=200, lr=0.1, seed=2).loss]
        out["names"][dtype] = model.sample(10, seed=0)
    out["isa_at_exit"] = mm.get_isa()
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"smoke: recorded {path}: instruction sets {supported}, ran on {out['isa']}")
    return 0


def compare(native_path: str, emulated_path: str) -> int:
    """The emulated CPU without AVX chose the generic kernels by itself and agrees with the native
    generic run."""
    with open(native_path) as f:
        native = json.load(f)
    with open(emulated_path) as f:
        emu = json.load(f)
    check(native["isa"] == native["isa_at_exit"] == "generic", f"the native run ran on generic: {native}")
    check(emu["supported"] == ["generic"], f"the emulated CPU offers only generic, got {emu['supported']}")
    check(emu["isa"] == emu["isa_at_exit"] == "generic", f"the emulated CPU ran on generic: {emu['isa']}")
    for dtype, tol in (("float64", 1e-9), ("float32", 1e-4)):
        a, b = np.asarray(native["losses"][dtype]), np.asarray(emu["losses"][dtype])
        check(a.shape == b.shape == (200,), f"{dtype}: 200 step losses each")
        err = float(np.max(np.abs(a - b) / np.abs(a)))
        check(err <= tol, f"{dtype}: emulated and native generic losses within {tol:g}, got {err:.2e}")
        same = sum(x == y for x, y in zip(native["names"][dtype], emu["names"][dtype]))
        bits = "bit for bit" if np.array_equal(a, b) else f"to {err:.1e}"
        print(
            f"smoke: no-AVX CPU, {dtype}: step losses equal native generic's {bits}; {same}/10 names the same"
        )
    return 0


def main() -> int:
    start = time.time()
    mm = installed_package()
    import importlib.metadata as md
    import importlib.util

    check(md.version("makemore_cpp") == mm.__version__, "the installed metadata's version is mm.__version__")
    check(
        importlib.util.find_spec("torch") is None,
        "this environment must not hold PyTorch: the package must install and run without it",
    )
    best = mm.get_isa()
    isas = [n for n in ("avx512", "avx2", "generic") if mm._core.isa_supported(n)]
    check(
        best == isas[0], f"the best instruction set this CPU has ({isas[0]}) is chosen at import, not {best}"
    )
    print(
        f"smoke: python {sys.version.split()[0]}, makemore_cpp {mm.__version__} from "
        f"{os.path.dirname(mm.__file__)}, instruction sets {isas}, chosen {best}"
    )

    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    tr, dev, _ = mm.split_words(words)
    Xtr, Ytr = mm.build_dataset(tr, vocab, block_size=3)
    Xdev, Ydev = mm.build_dataset(dev, vocab, block_size=3)
    check(
        len(words) == 29_910 and len(vocab) == 27, f"bundled names: {len(words)} words, {len(vocab)} letters"
    )

    steps = 1000
    for dtype, tol in (("float64", 1e-9), ("float32", 1e-4)):
        losses = {}
        for isa in isas:
            mm.set_isa(isa)
            check(mm.get_isa() == isa, f"set_isa({isa!r}) takes effect")
            model = mm.MLP(vocab, block_size=3, n_embd=10, n_hidden=200, dtype=dtype, seed=1, init="kaiming")
            dev0 = model.loss(Xdev, Ydev)
            hist = mm.train(model, Xtr, Ytr, steps=steps, batch_size=32, lr=0.1, seed=2)
            dev1 = model.loss(Xdev, Ydev)
            losses[isa] = np.asarray(hist.loss, dtype=np.float64)
            check(len(losses[isa]) == steps, f"{isa}/{dtype}: {steps} step losses, not {len(losses[isa])}")
            check(
                dev0 > 3.2 and dev1 < 2.6,
                f"{isa}/{dtype}: dev loss from about ln 27 = 3.30 to below 2.6, got {dev0:.3f} -> {dev1:.3f}",
            )
            names = model.sample(10, seed=0)
            check(
                len(names) == 10 and all(set(n) <= set(vocab.itos.values()) - {"."} for n in names),
                f"{isa}/{dtype}: 10 names of the vocabulary's letters, got {names}",
            )
            print(f"smoke: {isa:7s} {dtype}: dev loss {dev0:.4f} -> {dev1:.4f}; {', '.join(names[:5])}")
        ref = losses[isas[-1]]  # the generic path
        for isa, got in losses.items():
            err = float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)))
            check(err <= tol, f"{isa} and generic {dtype} losses within {tol:g} relative, got {err:.2e}")
            if isa != isas[-1]:
                print(f"smoke: {isa:7s} {dtype}: step losses within {err:.1e} of generic's (at most {tol:g})")
    mm.set_isa(best)

    with tempfile.TemporaryDirectory() as cwd:
        bindir = os.path.dirname(sys.executable)
        exe = os.path.join(bindir, "makemore-cpp")
        check(os.path.exists(exe), f"the makemore-cpp command is installed beside python ({exe})")
        out = run([exe, "--help"], cwd)
        check("train" in out and "sample" in out, f"makemore-cpp --help lists the commands:\n{out}")
        run([sys.executable, "-m", "makemore_cpp", "--help"], cwd)
        run([exe, "train", "--steps", "300", "-o", "run", "--samples", "3"], cwd)
        check(
            os.path.exists(os.path.join(cwd, "run", "model.npz")), "makemore-cpp train writes run/model.npz"
        )
        out = run([exe, "sample", "run", "-n", "5"], cwd)
        check("5 names" in out, f"makemore-cpp sample prints 5 names:\n{out}")
    print(f"smoke: passed in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", metavar="OUT", help="write a short run's results to OUT (JSON)")
    ap.add_argument("--compare", nargs=2, metavar=("NATIVE", "EMULATED"), help="compare two records")
    args = ap.parse_args()
    if args.record:
        sys.exit(record(args.record))
    if args.compare:
        sys.exit(compare(*args.compare))
    sys.exit(main())
