"""`python -m digitgen_client fetch --n 60000 --seed 0 --out synth.npz`: a labelled set to a file.

npz: one archive with `images` uint8 (n, 28, 28) and `labels` uint8 (n,), as /dataset sends them.
tar: one WebDataset-style archive (<index>.png + <index>.cls per item), the members of every page
in order: byte for byte the archive one request for all the items would give. Pages are fetched
one at a time and retried after a dropped connection or a 503.
"""
from __future__ import annotations

import argparse
import os
import sys
import tarfile
from pathlib import Path

import httpx
import numpy as np

from digitgen_client._common import DEFAULT_PAGE, DEFAULT_URL, DigitgenError, pages
from digitgen_client.client import Client, _pin


_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)


def tar_members(page: bytes, count: int) -> memoryview:
    """The members of one /dataset tar page, without its end-of-archive marker: `count` of them, found
    by walking their headers (each header, then its data padded to whole blocks)."""
    view, offset = memoryview(page), 0
    for _ in range(count):
        header = page[offset:offset + tarfile.BLOCKSIZE]
        if len(header) < tarfile.BLOCKSIZE or header == _ZERO_BLOCK:
            raise DigitgenError(200, "malformed_page", f"a tar page ended after fewer than its {count} members")
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        offset += tarfile.BLOCKSIZE + -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    if page[offset:offset + 2 * tarfile.BLOCKSIZE] != 2 * _ZERO_BLOCK:
        raise DigitgenError(200, "malformed_page", f"a tar page holds more than {count} members or lacks "
                            "its end marker")
    return view[:offset]


def tar_end(written: int) -> bytes:
    """What ends an archive of `written` bytes of members as tarfile ends one: two zero blocks, then
    zeros to a whole record. The pages' members and this give the bytes of one request for all items."""
    return bytes(2 * tarfile.BLOCKSIZE + (-(written + 2 * tarfile.BLOCKSIZE)) % tarfile.RECORDSIZE)


def _progress(total: int, quiet: bool):
    """tqdm when it is installed (the trainer's extra has it), else a plain line per page."""
    if quiet:
        return None
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="img", unit_scale=True, file=sys.stderr)
    except ImportError:
        class Lines:
            done = 0

            def update(self, k):
                self.done += k
                print(f"{self.done}/{total} images", file=sys.stderr)

            def close(self):
                pass
        return Lines()


def fetch(client: Client, out: Path, n: int, model: str, seed: int | None, digits, offset: int, fmt: str,
          batch: int, quiet: bool = False, verified: bool = False) -> int:
    """Write items [offset, offset + n) to `out`; returns the seed used."""
    seed = _pin(seed)
    bar = _progress(n, quiet)
    partial = out.with_name(out.name + ".part")
    try:
        if fmt == "npz":
            images, labels = [], []
            for page in client.iter_dataset(n, model, seed, digits, offset, batch, verified=verified):
                images.append(page[0])
                labels.append(page[1])
                if bar:
                    bar.update(len(page[1]))
            with open(partial, "wb") as f:
                np.savez(f, images=np.concatenate(images), labels=np.concatenate(labels))
        else:
            with open(partial, "wb") as archive:
                written = 0
                for start, size in pages(n, offset, batch):
                    page = client.fetch_page(size, model, seed, digits, start, format="tar", verified=verified)
                    members = tar_members(page, 2 * size)
                    archive.write(members)
                    written += len(members)
                    if bar:
                        bar.update(size)
                archive.write(tar_end(written))
        os.replace(partial, out)  # a finished file or none: never half a set under the final name
    finally:
        partial.unlink(missing_ok=True)
        if bar:
            bar.close()
    return seed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m digitgen_client",
                                     description="Fetch labelled synthetic digits from a digitgen service.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="write a labelled set to an .npz or .tar file")
    get.add_argument("--url", default=os.environ.get("DIGITGEN_URL", DEFAULT_URL),
                     help=f"the service (default: $DIGITGEN_URL or {DEFAULT_URL})")
    get.add_argument("--api-key", default=os.environ.get("DIGITGEN_API_KEY"), help="default: $DIGITGEN_API_KEY")
    get.add_argument("--n", type=int, required=True, help="number of images")
    get.add_argument("--model", help="a generative model (default: the service's default for datasets)")
    get.add_argument("--seed", type=int, help="the dataset's seed (default: random, printed)")
    get.add_argument("--digits", help="comma-separated subset of classes, e.g. 3,8 (class-conditional models)")
    get.add_argument("--verified", action="store_true",
                     help="every label confirmed by the model's classifier (off-class items drawn again)")
    get.add_argument("--offset", type=int, default=0, help="index of the first item (default 0)")
    get.add_argument("--format", choices=["npz", "tar"], help="default: from --out's suffix")
    get.add_argument("--batch", type=int, default=DEFAULT_PAGE, help=f"items per request (default {DEFAULT_PAGE})")
    get.add_argument("--retries", type=int, default=5, help="tries after a transient failure (default 5)")
    get.add_argument("--out", type=Path, required=True, help="file to write (.npz or .tar)")
    get.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    fmt = args.format or ("tar" if args.out.suffix == ".tar" else "npz")
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            seed = fetch(client, args.out, args.n, args.model, args.seed, args.digits, args.offset, fmt, args.batch,
                         args.quiet, verified=args.verified)
    except DigitgenError as exc:
        sys.exit(f"digitgen: {exc}")
    except ValueError as exc:
        sys.exit(f"digitgen: {exc}")
    except (httpx.HTTPError, OSError) as exc:  # still failing after the retries, or the file
        sys.exit(f"digitgen: {type(exc).__name__}: {exc}")
    print(f"wrote {args.n} images and labels to {args.out} (model {args.model}, seed {seed})", file=sys.stderr)
