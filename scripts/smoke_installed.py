"""Smoke test of an installed makemore_cpp (a wheel or an sdist, scripts/check_dist.sh).

    python scripts/smoke_installed.py       # with the environment's python, from any folder

Needs only what the package itself needs (NumPy, tqdm): no PyTorch, no test extras. Checks that the
package is the installed one (not a source tree on the path), and then, on the installed files:
import; a 1,000-step training run on the bundled names (the part-3 initialisation) on every instruction
set this CPU has, the best one chosen at import and the generic one forced: the step losses the
same on every path to 1e-9 relative in float64 and 1e-4 in float32 (the README's trajectory
tolerances), the dev loss from ln 27 to below 2.6; sampling; and the
command line: ``makemore-cpp --help``, ``python -m makemore_cpp --help``, a short ``train`` and a
``sample`` from its run folder. Exits non-zero with the failed rule on the first failure.
"""

from __future__ import annotations

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
    sys.exit(main())
