"""What a package index shows of the built artefacts (scripts/check_dist.sh runs it, after twine check).

    python scripts/check_metadata.py --python 3.9 --python 3.13 DIST [DIST ...]

For each sdist (PKG-INFO) or wheel (METADATA): the name, version, summary, licence, project URLs and
Requires-Python are there; Requires-Python admits every Python checked (--python) and the
classifiers name each of them; the README is Markdown and renders as PyPI renders it (GitHub-
flavoured, readme_renderer[md]): every table and every section heading of the README comes out as
HTML. Relative links and images (to files of the repository) are listed: an index cannot resolve
them. Needs readme_renderer[md] and packaging. Exits non-zero with the failed rule.
"""

from __future__ import annotations

import argparse
import email
import re
import sys
import tarfile
import zipfile

from packaging.specifiers import SpecifierSet
from readme_renderer.markdown import render


def fail(rule: str) -> None:
    sys.exit(f"check_metadata: FAILED: {rule}")


def metadata(path: str) -> email.message.Message:
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            return email.message_from_bytes(z.read(name))
    with tarfile.open(path) as tf:
        member = next(m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        return email.message_from_bytes(tf.extractfile(member).read())


def markdown_outside_code(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def check(path: str, pythons: list[str]) -> None:
    meta = metadata(path)
    for field in ("Name", "Version", "Summary", "Requires-Python"):
        if not meta.get(field):
            fail(f"{path}: no {field}")
    if not (meta.get("License") or meta.get("License-Expression")):
        fail(f"{path}: no licence")
    urls = meta.get_all("Project-URL") or []
    if not urls:
        fail(f"{path}: no Project-URL")
    spec = SpecifierSet(meta["Requires-Python"])
    classifiers = meta.get_all("Classifier") or []
    for v in pythons:
        if f"{v}.0" not in spec:
            fail(f"{path}: Requires-Python {spec} excludes Python {v}, which is checked")
        if f"Programming Language :: Python :: {v}" not in classifiers:
            fail(f"{path}: no classifier for Python {v}, which is checked")
    if not (meta.get("Description-Content-Type") or "").startswith("text/markdown"):
        fail(f"{path}: the README must be declared text/markdown, not {meta.get('Description-Content-Type')}")
    readme = meta.get_payload()
    html = render(readme, variant="GFM")
    if not html:
        fail(f"{path}: the README does not render (readme_renderer[md] missing, or bad Markdown)")
    body = markdown_outside_code(readme)
    tables = sum(1 for line in body if re.match(r"^\|\s*:?-{3,}", line))
    headings = [line[3:].strip() for line in body if line.startswith("## ")]
    if html.count("<table>") != tables:
        fail(f"{path}: {tables} tables in the README, {html.count('<table>')} in its HTML")
    for h in headings:
        if not re.search(r"<h2[^>]*>" + re.escape(h.replace("&", "&amp;")) + r"(<a [^>]*></a>)?</h2>", html):
            fail(f"{path}: the heading {h!r} does not render as a heading")
    relative = sorted(set(re.findall(r"\]\(((?!https?://|#|mailto:)[^)\s]+)\)", "\n".join(body))))
    print(
        f"check_metadata: {path.rsplit('/', 1)[-1]}: {meta['Name']} {meta['Version']}, Requires-Python "
        f"{spec}, {len(classifiers)} classifiers, {len(urls)} project URLs; README renders "
        f"({len(headings)} sections, {tables} tables, {len(html):,} bytes of HTML)"
    )
    if relative:
        print(f"  note: {len(relative)} relative links an index cannot resolve: {', '.join(relative)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", default=[], help="a Python version checked (X.Y)")
    ap.add_argument("dists", nargs="+")
    args = ap.parse_args()
    for path in args.dists:
        check(path, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
