"""Download helpers for the file-backed datasets, with checksum verification.

Nothing in leandl downloads at run time; ``leandl data download NAME --root DIR`` (or
:func:`download_dataset`) fetches the official files once into ``DIR/NAME``. Each file is
streamed with ``urllib`` into ``NAME.part`` beside its destination, hashed while it streams,
compared with the known digest, then renamed atomically (``os.replace``); on a mismatch the
temporary file is deleted and :class:`~leandl.errors.DataError` names file, expected and
actual digest. Archives (CIFAR) are then unpacked with :func:`~leandl.data.extract.safe_extract`.

Digests are SHA-256, as published in TensorFlow Datasets' ``url_checksums`` files
(``mnist.txt``, ``fashion_mnist.txt``, ``cifar10.txt``, ``cifar100.txt``) for exactly these
URLs. A digest may be written ``sha256:HEX`` or ``md5:HEX`` (a bare 64-hex string is SHA-256, a
bare 32-hex string MD5), so mirrors that only publish MD5 can be verified too.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from leandl.data.extract import safe_extract
from leandl.errors import ConfigError, DataError, unknown_name_message

__all__ = ["RemoteFile", "KNOWN_FILES", "download_dataset", "file_digest", "parse_digest"]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, official base URL, digest and whether to unpack it."""

    name: str
    base_url: str
    digest: str
    extract: bool = False


_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"

KNOWN_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        RemoteFile("train-images-idx3-ubyte.gz", _MNIST, "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile("train-labels-idx1-ubyte.gz", _MNIST, "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile("t10k-images-idx3-ubyte.gz", _MNIST, "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _MNIST, "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
    "fashion_mnist": (
        RemoteFile("train-images-idx3-ubyte.gz", _FASHION, "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        RemoteFile("train-labels-idx1-ubyte.gz", _FASHION, "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        RemoteFile("t10k-images-idx3-ubyte.gz", _FASHION, "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        RemoteFile("t10k-labels-idx1-ubyte.gz", _FASHION, "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    ),
    "cifar10": (
        RemoteFile("cifar-10-binary.tar.gz", _TORONTO, "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", True),
    ),
    "cifar100": (
        RemoteFile("cifar-100-binary.tar.gz", _TORONTO, "sha256:58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec", True),
    ),
}


def parse_digest(digest: str) -> tuple[str, str]:
    """``"sha256:HEX"`` / ``"md5:HEX"`` / bare hex -> ``(algorithm, lowercase hex)``."""
    algo, _, value = digest.partition(":") if ":" in digest else ("", "", digest)
    value = value.strip().lower()
    if not algo:
        algo = {64: "sha256", 32: "md5"}.get(len(value), "")
    if algo not in ("sha256", "md5") or not value or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"cannot read checksum '{digest}'; write sha256:HEX or md5:HEX", "checksums")
    return algo, value


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: Path, algorithm: str, expected: str, progress: bool) -> None:
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                fh.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress and total:
                    sys.stderr.write(f"\r{dest.name}: {done / total:6.1%} of {total / 1e6:.1f} MB")
            fh.flush()
            os.fsync(fh.fileno())
        if progress and total:
            sys.stderr.write("\n")
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {err}", dest.name, "check the URL and the network, or use --base-url with a mirror") from None
    actual = h.hexdigest()
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"checksum mismatch: expected {algorithm} {expected}, got {actual}; the partial file was deleted",
            dest.name,
            "retry, or use another mirror with --base-url",
        )
    os.replace(tmp, dest)


def download_dataset(
    name: str,
    root: str | Path,
    *,
    base_url: str | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download (and verify, and unpack) the official files of ``name`` into ``root/name``.

    Args:
        name: ``mnist``, ``fashion_mnist``, ``cifar10`` or ``cifar100``.
        root: data root; files land in ``root/name/``.
        base_url: mirror replacing each file's official base URL (``.../`` + file name).
        checksums: file name -> digest, overriding the known digests (mirrors, tests).
        progress: print a progress line per file to stderr.

    Returns:
        Paths of the downloaded files (an already present file with the right digest is kept).

    Raises:
        UsageError: unknown name. DataError: network failure or checksum mismatch.
    """
    if name not in KNOWN_FILES:
        raise ConfigError(unknown_name_message("downloadable dataset", name, KNOWN_FILES), "name")
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for rf in KNOWN_FILES[name]:
        algorithm, expected = parse_digest((checksums or {}).get(rf.name, rf.digest))
        dest = folder / rf.name
        if not (dest.is_file() and file_digest(dest, algorithm) == expected):
            base = base_url if base_url is not None else rf.base_url
            _fetch(base.rstrip("/") + "/" + rf.name, dest, algorithm, expected, progress)
        if rf.extract:
            safe_extract(dest, folder)
        out.append(dest)
    return out
