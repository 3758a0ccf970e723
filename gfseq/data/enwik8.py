"""enwik8: the canonical file, checked, split by bytes and memory-mapped.

enwik8 is the first 10^8 bytes of an English Wikipedia XML dump from 2006 (Hutter Prize). The
standard split, used by every published character-level result, is by **bytes**:
[0, 90M) train, [90M, 95M) valid, [95M, 100M) test. The model's alphabet is the 256 byte values (205
occur; a fixed 256 gives the same bits per byte and never depends on the data), so "characters"
here are bytes, and BPC is bits per byte.

Nothing is copied into Python objects: :class:`Enwik8` memory-maps the file and each split is a
read-only numpy view into it.

The loader takes a local ``enwik8`` or ``enwik8.zip`` (``data_dir``), or downloads the zip where a
network exists (``download=True``). The file's MD5 must be the published one unless
``allow_unverified`` is given; the manifest records which. A file of the wrong size is always an
error: the split offsets would no longer mean the standard split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 100_000_000
MD5 = "a1fa5ffddb56f4953e226637dabbb36a"
URL = "http://mattmahoney.net/dc/enwik8.zip"
#: name -> (byte offset, length): the standard split.
SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 90_000_000),
    "valid": (90_000_000, 5_000_000),
    "test": (95_000_000, 5_000_000),
}
VOCAB_SIZE = 256
_CHUNK = 1_000_000  # divides every split boundary, so each chunk belongs to exactly one split

HOW_TO_GET = (
    f"download {URL} (36 MB; unzipped it is the 100,000,000-byte file 'enwik8') and put enwik8 or "
    "enwik8.zip in that folder, or pass --download where this machine has a network"
)


class Enwik8Error(ValueError):
    """The file is missing, damaged or not enwik8; the message says what to do."""


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled, leave=False)


def locate(data_dir: Path | str, download: bool = False, progress: bool = True) -> Path:
    """The path of the 100,000,000-byte file: ``data_dir/enwik8``, extracted from ``enwik8.zip`` when
    only the zip is there, or downloaded first with ``download=True``. ``data_dir`` may also name the
    file or the zip itself. Every failure is an :class:`Enwik8Error` that starts with the flag."""
    given = Path(data_dir)
    try:
        if given.is_file():
            if zipfile.is_zipfile(given):
                return _extract(given, given.parent, progress)
            if given.suffix == ".zip":
                raise Enwik8Error(f"--data-dir: {str(given)!r} is not a zip file; {HOW_TO_GET}")
            return given
        if given.exists() and not given.is_dir():
            raise Enwik8Error(f"--data-dir: {str(given)!r} is neither a folder nor a file")
        plain, zipped = given / "enwik8", given / "enwik8.zip"
        if plain.is_file():
            return plain
        if zipped.is_file():
            return _extract(zipped, given, progress)
    except PermissionError as err:
        raise Enwik8Error(
            f"--data-dir: cannot read {str(err.filename or given)!r}: permission denied"
        ) from None
    if download:
        _download(zipped, progress)
        return _extract(zipped, given, progress)
    raise Enwik8Error(f"--data-dir: no enwik8 or enwik8.zip in {str(given)!r}; {HOW_TO_GET}")


def _extract(archive: Path, folder: Path, progress: bool) -> Path:
    target = folder / "enwik8"
    if target.is_file():
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            files = [i for i in zf.infolist() if not i.is_dir() and Path(i.filename).name == "enwik8"]
            if not files:
                listed = ", ".join(zf.namelist()[:5])
                raise Enwik8Error(
                    f"--data-dir: {archive} holds no file named enwik8 ({listed}); {HOW_TO_GET}"
                )
            info = files[0]
            if info.file_size != SIZE:  # refused before anything is written
                raise Enwik8Error(
                    f"--data-dir: {archive} holds a {info.file_size:,}-byte enwik8, expected {SIZE:,}; "
                    + HOW_TO_GET
                )
            tmp = folder / f".enwik8.tmp-{os.getpid()}"
            try:
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    bar = _progress(info.file_size, "unzip enwik8", progress)
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        bar.update(len(chunk))
                    bar.close()
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    except zipfile.BadZipFile as err:
        raise Enwik8Error(f"--data-dir: {archive}: damaged zip ({err}); {HOW_TO_GET}") from None
    except OSError as err:
        raise Enwik8Error(
            f"--data-dir: cannot unzip {archive} into {str(folder)!r}: {err.strerror or err} "
            "(unzip it yourself into a writable folder and pass that)"
        ) from None
    return target


def _download(target: Path, progress: bool) -> None:
    import http.client

    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(URL, timeout=60) as response, open(tmp, "wb") as out:
            bar = _progress(int(response.headers.get("Content-Length") or 0), "download enwik8", progress)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
            bar.close()
        os.replace(tmp, target)
    except (OSError, http.client.HTTPException) as err:  # URLError is an OSError
        tmp.unlink(missing_ok=True)
        for folder in made:  # the folders made for it: only the empty ones, deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise Enwik8Error(f"--download: cannot fetch {URL}: {getattr(err, 'reason', err)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def check(path: Path | str, allow_unverified: bool = False, progress: bool = True) -> dict[str, Any]:
    """Size, MD5 and each split's SHA-256 in one pass; the manifest (see :func:`manifest`).

    A size other than 100,000,000 bytes is an error; an MD5 other than the published one is an error
    unless ``allow_unverified`` (then ``verified`` is false in the manifest).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as err:
        raise Enwik8Error(f"--data-dir: cannot read {path}: {err.strerror or err}") from None
    if size != SIZE:
        kind = "truncated" if size < SIZE else "too long"
        raise Enwik8Error(
            f"--data-dir: {path}: {kind}: expected {SIZE:,} bytes, found {size:,} (the splits are "
            f"defined by byte offsets, so only the complete file works); {HOW_TO_GET}"
        )
    md5 = hashlib.md5(usedforsecurity=False)
    split_hash = {name: hashlib.sha256() for name in SPLITS}
    bar = _progress(size, "check enwik8", progress)
    with open(path, "rb") as f:
        offset = 0
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            for name, (start, length) in SPLITS.items():
                if start <= offset < start + length:
                    split_hash[name].update(chunk)
            offset += len(chunk)
            bar.update(len(chunk))
    bar.close()
    digest = md5.hexdigest()
    verified = digest == MD5
    if not verified and not allow_unverified:
        raise Enwik8Error(
            f"--data-dir: {path}: MD5 {digest} is not enwik8's {MD5}; results on it are not comparable with "
            "published ones (pass --allow-unverified to use it anyway; the result records it)"
        )
    return manifest(path, digest, verified, {n: h.hexdigest() for n, h in split_hash.items()})


def fingerprint(md5: str) -> str:
    """The data's identity: a hash of the file's MD5, size, split offsets and vocabulary. Every copy of
    enwik8 has :data:`CANONICAL_FINGERPRINT`, which is known without the file."""
    content = {
        "name": "enwik8",
        "md5": md5,
        "size": SIZE,
        "splits": {name: [start, length] for name, (start, length) in SPLITS.items()},
        "vocabulary": VOCAB_SIZE,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


CANONICAL_FINGERPRINT = fingerprint(MD5)


def manifest(path: Path, md5: str, verified: bool, split_sha256: dict[str, str]) -> dict[str, Any]:
    """What the data is: the file, its checksums, each split's place and SHA-256, the fingerprint."""
    return {
        "name": "enwik8",
        "file": str(Path(path).resolve()),
        "size": SIZE,
        "md5": md5,
        "md5_expected": MD5,
        "verified": verified,
        "unit": "byte",
        "vocabulary": VOCAB_SIZE,
        "splits": {
            name: {"offset": start, "length": length, "sha256": split_sha256[name]}
            for name, (start, length) in SPLITS.items()
        },
        "fingerprint": fingerprint(md5),
    }


@dataclass
class Enwik8:
    """The checked file, memory-mapped; ``split(name)`` is a read-only uint8 view, no copy."""

    path: Path
    manifest: dict[str, Any]

    def __post_init__(self) -> None:
        self.bytes = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(SIZE,))

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise Enwik8Error(f"split: expected one of {', '.join(SPLITS)}, got {name!r}")
        start, length = SPLITS[name]
        return self.bytes[start : start + length]

    def context(self, name: str) -> int | None:
        """The byte just before a split (the input that predicts the split's first byte), if any."""
        start, _ = SPLITS[name]
        return int(self.bytes[start - 1]) if start > 0 else None


def prepare(
    data_dir: Path | str,
    allow_unverified: bool = False,
    download: bool = False,
    progress: bool = True,
) -> Enwik8:
    """Locate (unzip, download), check and memory-map enwik8."""
    path = locate(data_dir, download=download, progress=progress)
    return Enwik8(path, check(path, allow_unverified=allow_unverified, progress=progress))
