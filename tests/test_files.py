"""Files. ``load_words`` reads UTF-8 in every shape a names file comes in (accents, non-Latin
scripts, a byte-order mark, CRLF, blank lines, surrounding white space, very long lines) and names
the file and the line of text that is not UTF-8. Checkpoints that are truncated, corrupt or
foreign are refused with a ValueError naming the file; saving is atomic."""

from __future__ import annotations

import io
import json
import os
import pathlib
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import makemore_cpp as mm
from makemore_cpp import checkpoint as ckpt

# ================================================================================== load_words

NAMES = [
    "José",
    "Zoë",
    "Ångström",
    "Łukasz",
    "Mária",
    "François",
    "Þórunn",
    "李",
    "王芳",
    "Мария",
    "Αλέξανδρος",
    "محمد",
    "דוד",
    "अनन्या",
    "さくら",
    "민준",
    "Nguyễn",
    "🙂smile",
    "o'brien",
    "mary-ann",
]


def write(tmp_path: pathlib.Path, data: bytes, name: str = "words.txt") -> pathlib.Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_utf8_names_in_any_script(tmp_path):
    p = write(tmp_path, ("\n".join(NAMES) + "\n").encode("utf-8"))
    words = mm.load_words(p)
    assert words == NAMES
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    assert vocab.decode(Y[: len(NAMES[0])]) == NAMES[0]
    model = mm.MLP(vocab, 3, 4, 8)
    assert all(set(s) <= set(vocab.chars) for s in model.sample(20, max_len=10))


@pytest.mark.parametrize(
    "words",
    [NAMES, ["josé", "zoë", "anna", "ø"], ["emma", "olivia", "ava"]],
    ids=["any script", "latin-1", "ascii"],
)
def test_sampled_names_are_the_sampled_ids_decoded(words):
    """sample() decodes one byte a character when every code point is below 256 and UTF-32
    otherwise: either way the strings are exactly the ids of sample_ids, decoded."""
    vocab = mm.Vocab.from_words(words)
    model = mm.MLP(vocab, 2, 4, 8, seed=3)
    for kw in (dict(), dict(temperature=3.0, prefix=words[0][:1]), dict(max_len=1)):
        names = model.sample(300, seed=5, **kw)
        prefix = vocab.encode(kw.get("prefix", ""))
        ids = model.sample_ids(300, seed=5, prefix=prefix, **{k: v for k, v in kw.items() if k != "prefix"})
        assert names == [vocab.decode(row[row > 0]) for row in ids]
        assert any(len(name) > len(kw.get("prefix", "")) for name in names)


def test_bom_crlf_blank_lines_and_white_space(tmp_path):
    data = "\ufeff  anna \r\n\r\n\tbob\r\n   \r\n José\t\r\n\n\nzoë".encode("utf-8")
    assert mm.load_words(write(tmp_path, data)) == ["anna", "bob", "José", "zoë"]
    # the same words however the lines end, the lecture's splitlines() included (a lone CR)
    for sep in ("\n", "\r\n", "\r"):
        assert mm.load_words(write(tmp_path, sep.join(["anna", "bob", "", "zoë", ""]).encode())) == [
            "anna",
            "bob",
            "zoë",
        ]
    # a BOM alone, and an empty file
    assert mm.load_words(write(tmp_path, b"\xef\xbb\xbf")) == []
    assert mm.load_words(write(tmp_path, b"")) == []
    # inner spaces are part of a word
    assert mm.load_words(write(tmp_path, b"mary ann\n")) == ["mary ann"]


def test_matches_the_lectures_reading(tmp_path):
    """``open(path).read().splitlines()`` with blank lines and white space dropped."""
    text = "emma\r\nolivia\n\n  ava \rISABELLA\u2028mia\x0bsophia\x0c\x1cx\x85y\n"
    p = write(tmp_path, text.encode())
    with open(p, encoding="utf-8") as f:
        lecture = [w.strip() for w in f.read().splitlines() if w.strip()]
    assert mm.load_words(p) == lecture


def test_very_long_lines(tmp_path):
    long = "ab" * 5_000_000 + "é"
    p = write(tmp_path, f"x\n{long}\ny\n".encode())
    assert mm.load_words(p) == ["x", long, "y"]


@pytest.mark.parametrize(
    "data, line, byte",
    [
        (b"anna\nJos\xe9\nbob\n", 2, "0xe9"),  # Latin-1
        (b"\xef\xbb\xbfanna\r\nbob\r\nJos\xe9\r\n", 3, "0xe9"),  # after a BOM and CRLF
        (b"\xff\xfea\x00n\x00", 1, "0xff"),  # UTF-16
        (b"anna\nbob\nzo\xc3", 3, "0xc3"),  # truncated at the end of the file
        (b"a\n\n\nb\n\xed\xa0\x80\n", 5, "0xed"),  # an encoded surrogate
        (b"a\rb\rc\x80", 3, "0x80"),  # lines ended by CR alone
        (b"\x80", 1, "0x80"),
    ],
)
def test_not_utf8_names_the_file_and_line(tmp_path, data, line, byte):
    p = write(tmp_path, data, "latin.txt")
    with pytest.raises(ValueError) as info:
        mm.load_words(p)
    msg = str(info.value)
    assert str(p) in msg and f"line {line} " in msg and "UTF-8" in msg and byte in msg, msg


def test_missing_file_and_path_types(tmp_path):
    with pytest.raises(FileNotFoundError):
        mm.load_words(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        mm.load_words(tmp_path)
    p = write(tmp_path, b"a\nb\n")
    assert mm.load_words(str(p)) == mm.load_words(p) == ["a", "b"]


line_text = (
    st.text(
        st.characters(
            blacklist_categories=("Cs",),
            blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff",
        ),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(line_text, max_size=30),
    sep=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    pad=st.lists(st.sampled_from(["", " ", "\t", "  \t "]), min_size=4, max_size=4),
    blank=st.integers(0, 3),
)
def test_any_words_round_trip(tmp_path, words, sep, bom, pad, blank):
    lines = []
    for i, w in enumerate(words):
        lines.append(pad[i % 4] + w + pad[(i + 1) % 4])
        lines += [pad[(i + 2) % 4]] * (blank if i % 3 == 0 else 0)
    data = ("\ufeff" if bom else "") + sep.join(lines) + (sep if words and blank else "")
    p = write(tmp_path, data.encode("utf-8"), "rt.txt")
    assert mm.load_words(p) == words


# ================================================================================== checkpoints


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A training checkpoint (AdamW moments, step counter) and its bytes."""
    vocab = mm.Vocab.from_words(["anna", "bob", "zoë"])
    X, Y = mm.build_dataset(["anna", "bob", "zoë"], vocab, 3)
    model = mm.MLP(vocab, 3, 4, 8, seed=1)
    hist = mm.train(model, X, Y, 5, batch_size=4, optimizer="adamw", lr=0.01)
    path = tmp_path_factory.mktemp("ck") / "model.npz"
    ckpt.save(path, model, hist.state, extra={"note": "x"})
    return path, path.read_bytes(), model


def assert_refused(path, *fragments):
    with pytest.raises(ValueError) as info:
        ckpt.load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def same_params(a: mm.MLP, b: mm.MLP) -> bool:
    pa, pb = a.get_params(), b.get_params()
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_round_trip(saved):
    path, _, model = saved
    c = ckpt.load(path)
    assert same_params(c.model, model) and c.model.vocab == model.vocab and c.extra == {"note": "x"}
    assert c.state.step == 5 and c.state.settings["optimizer"] == "adamw"
    assert same_params(mm.MLP.load(path), model)


def test_truncated_files_are_refused(saved, tmp_path):
    _, raw, _ = saved
    cuts = sorted(
        set(
            [0, 1, 3, 4, 10, 22, 30, 100, len(raw) // 3, len(raw) // 2, len(raw) - 22, len(raw) - 1]
            + list(range(0, len(raw), max(1, len(raw) // 40)))
        )
    )
    for cut in cuts:
        p = write(tmp_path, raw[:cut], f"cut{cut}.npz")
        assert_refused(p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupt_bytes_are_refused_or_harmless(saved, tmp_path, data):
    """Any bytes changed anywhere: the load is refused with a ValueError naming the file -- or, when
    the change hit bytes that carry nothing (a zip field nobody reads), the very same model."""
    path, raw, model = saved
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        i = data.draw(st.integers(0, len(b) - 1), label="offset")
        b[i] ^= data.draw(st.integers(1, 255), label="xor")
    p = write(tmp_path, bytes(b), "corrupt.npz")
    try:
        c = ckpt.load(p)
    except ValueError as e:
        assert str(p) in str(e)
        return
    assert same_params(c.model, model) and c.model.vocab == model.vocab


@pytest.mark.parametrize("field, value", [(8, 99), (6, 0x41), (6, 0x20), (4, 109)])
def test_corrupt_zip_headers_are_refused(saved, tmp_path, field, value):
    """Header fields that make zipfile raise NotImplementedError or RuntimeError (compression method,
    the "encrypted" and "patched data" flags, the version needed) in a member's local and central
    headers: a ValueError naming the file, as for any other corruption."""
    path, raw, _ = saved
    b = bytearray(raw)
    for sig, base in ((b"PK\x03\x04", 0), (b"PK\x01\x02", 2)):  # central headers have one field more first
        i = b.find(sig, 1)
        b[i + base + field] = value & 0xFF
    assert_refused(write(tmp_path, bytes(b), "bad-header.npz"), "corrupt")


def npz_bytes(**arrays) -> bytes:
    f = io.BytesIO()
    np.savez(f, **arrays)
    return f.getvalue()


def zip_bytes(files: dict) -> bytes:
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return f.getvalue()


FOREIGN = {
    "empty": b"",
    "text": b"emma\nolivia\n",
    "json": json.dumps({"format": ckpt.FORMAT}).encode(),
    "npy": None,  # filled below
    "npz of other arrays": npz_bytes(a=np.zeros(3), b=np.ones((2, 2))),
    "npz with a pickled header": None,
    "zip of text": zip_bytes({"readme.txt": b"hello"}),
    "zip with a fake header": zip_bytes({"__meta__.npy": b"not an npy"}),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
    "torch-like zip": zip_bytes({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3"}),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_files_are_refused(tmp_path, kind):
    data = FOREIGN[kind]
    if kind == "npy":
        f = io.BytesIO()
        np.save(f, np.arange(10))
        data = f.getvalue()
    elif kind == "npz with a pickled header":
        data = npz_bytes(__meta__=np.array([{"format": ckpt.FORMAT}], dtype=object))
    p = write(tmp_path, data, "foreign.npz")
    assert_refused(p)


def test_missing_file_and_directory(tmp_path):
    assert_refused(tmp_path / "nope.npz", "no such")
    assert_refused(tmp_path)


def rewrite(path: pathlib.Path, out: pathlib.Path, meta_change=None, **arrays) -> pathlib.Path:
    with np.load(path) as z:
        content = {k: z[k] for k in z.files}
    meta = json.loads(bytes(content["__meta__"]).decode())
    if meta_change is not None:
        meta = meta_change(meta)
    content["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    for k, a in arrays.items():
        if a is None:
            content.pop(k)
        else:
            content[k] = a
    np.savez(out, **content)
    return out


HEADER_CHANGES = {
    "format": (lambda m: {**m, "format": "something.else"}, "not a makemore_cpp checkpoint"),
    "version": (lambda m: {**m, "version": 99}, "version 99"),
    "no config": (lambda m: {k: v for k, v in m.items() if k != "config"}, "inconsistent"),
    "huge sizes": (
        lambda m: {**m, "config": {**m["config"], "n_embd": 10**6, "block_size": 60000}},
        "inconsistent",
    ),
    "sizes as floats": (lambda m: {**m, "config": {**m["config"], "n_embd": 4.0}}, "inconsistent"),
    "hidden as an int": (lambda m: {**m, "config": {**m["config"], "n_hidden": 8}}, "inconsistent"),
    "duplicate characters": (
        lambda m: {**m, "config": {**m["config"], "vocab": ["a", "a", "b", "n", "o", "z", "ë"]}},
        "inconsistent",
    ),
    "dtype": (lambda m: {**m, "config": {**m["config"], "dtype": "int8"}}, "inconsistent"),
    "init": (lambda m: {**m, "config": {**m["config"], "init": ["x"]}}, "inconsistent"),
    "batch_size": (
        lambda m: {**m, "state": {**m["state"], "settings": {**m["state"]["settings"], "batch_size": 2**40}}},
        "inconsistent",
    ),
    "optimizer": (
        lambda m: {
            **m,
            "state": {**m["state"], "settings": {**m["state"]["settings"], "optimizer": "rmsprop"}},
        },
        "inconsistent",
    ),
    "momentum nan": (
        lambda m: {
            **m,
            "state": {**m["state"], "settings": {**m["state"]["settings"], "betas": [0.9, float("nan")]}},
        },
        "inconsistent",
    ),
    "negative step": (lambda m: {**m, "state": {**m["state"], "step": -5}}, "inconsistent"),
    "state garbage": (lambda m: {**m, "state": [1, 2]}, "inconsistent"),
}


@pytest.mark.parametrize("change", list(HEADER_CHANGES))
def test_tampered_headers_are_refused(saved, tmp_path, change):
    path, _, _ = saved
    f, fragment = HEADER_CHANGES[change]
    assert_refused(rewrite(path, tmp_path / "t.npz", f), fragment)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"param/C": np.zeros((2, 2))}, "inconsistent"),
        ({"param/C": np.full((7, 4), np.nan)}, "finite"),
        ({"param/W1": np.full((12, 8), "x")}, "inconsistent"),
        ({"param/b2": None}, "inconsistent"),
        ({"m/C": None}, "inconsistent"),
        ({"v/W1": np.zeros((1, 1))}, "inconsistent"),
        ({"__meta__": np.array([1.5, 2.5])}, "cannot read"),
        ({"__meta__": np.array([255, 254], np.uint8)}, "cannot read"),
    ],
)
def test_tampered_arrays_are_refused(saved, tmp_path, arrays, fragment):
    path, _, _ = saved
    assert_refused(rewrite(path, tmp_path / "t.npz", **arrays), fragment)


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    """A save that fails midway -- an error, a full disk, Ctrl-C -- leaves the previous file whole
    and no temporary file behind; the file appears only complete (os.replace)."""
    path, raw, model = saved
    target = tmp_path / "model.npz"
    target.write_bytes(raw)
    other = mm.MLP(model.vocab, 3, 4, 8, seed=2)

    real_savez = np.savez
    for exc in (OSError(28, "No space left on device"), KeyboardInterrupt()):

        def broken(f, exc=exc, **arrays):
            real_savez(f, **{k: a for k, a in list(arrays.items())[:2]})  # part of the file, then fail
            raise exc

        monkeypatch.setattr(np, "savez", broken)
        with pytest.raises(type(exc)):
            other.save(target)
        monkeypatch.setattr(np, "savez", real_savez)
        assert target.read_bytes() == raw
        assert sorted(os.listdir(tmp_path)) == ["model.npz"]
        assert same_params(mm.MLP.load(target), model)

    # the target is only ever replaced by a complete file
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(mm.MLP.load(src).get_params()["C"].copy())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    other.save(target)
    assert len(seen) == 1 and np.array_equal(seen[0], other.get_params()["C"])
    assert same_params(mm.MLP.load(target), other)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_save_refuses_what_it_cannot_write(saved, tmp_path):
    _, _, model = saved
    with pytest.raises(FileNotFoundError):
        model.save(tmp_path / "no" / "such" / "folder.npz")
    with pytest.raises(TypeError, match="JSON"):
        ckpt.save(tmp_path / "x.npz", model, extra={"a": object()})
    assert os.listdir(tmp_path) == []
