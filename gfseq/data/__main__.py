"""Prepare and check a data set: ``python -m gfseq.data enwik8 --data-dir D [--allow-unverified] --json``.

Finds (unzips, or with ``--download`` fetches) enwik8 in D, checks its size and MD5 and prints the
manifest: file size, MD5, whether it is verified, and each split's byte offset, length and SHA-256.
Exit 0 when the data is usable, 2 with a one-line reason when it is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m gfseq.data", description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=["enwik8"], help="the data set to prepare")
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding enwik8 or enwik8.zip")
    p.add_argument("--allow-unverified", action="store_true", help="accept a file whose MD5 differs")
    p.add_argument("--download", action="store_true", help="fetch enwik8.zip when it is not in --data-dir")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gfseq.data import enwik8

    try:
        data = enwik8.prepare(
            args.data_dir,
            allow_unverified=args.allow_unverified,
            download=args.download,
            progress=not args.quiet,
        )
    except enwik8.Enwik8Error as err:
        print(f"gfseq.data: error: {err}", file=sys.stderr)
        return 2
    m = data.manifest
    if args.json:
        print(json.dumps(m, indent=2, sort_keys=True))
        return 0
    state = "verified" if m["verified"] else f"UNVERIFIED (expected MD5 {m['md5_expected']})"
    print(f"{m['file']}: {m['size']:,} bytes, MD5 {m['md5']} {state}")
    for name, s in m["splits"].items():
        print(f"  {name:5s} bytes [{s['offset']:,}, {s['offset'] + s['length']:,})  sha256 {s['sha256']}")
    print(f"  fingerprint {m['fingerprint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
