from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from leandl.cli import main as cli_main
from leandl.data import download_dataset, load_data
from leandl.data.download import KNOWN_FILES, parse_digest
from leandl.errors import ConfigError, DataError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An http.server on 127.0.0.1 (port 0) serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_mnist_then_load(server, tmp_path: Path, fakes) -> None:
    url, www = server
    fakes.write_mnist(www, compress=True)
    sums = {f.name: _sha(www / f.name) for f in KNOWN_FILES["mnist"]}
    root = tmp_path / "data"
    paths = download_dataset("mnist", root, base_url=url, checksums=sums, progress=False)
    assert [p.name for p in paths] == [f.name for f in KNOWN_FILES["mnist"]]
    assert all(p.read_bytes() == (www / p.name).read_bytes() for p in paths)
    assert not list((root / "mnist").glob("*.part"))
    b = load_data("mnist", root=str(root))
    assert len(b.test) == 20 and b.test[0][0].shape == (1, 28, 28)


def test_download_cifar_binary_tar_then_load(server, tmp_path: Path, fakes) -> None:
    url, www = server
    written = fakes.write_cifar10_bin(tmp_path / "src")
    fakes.tar_gz(www / "cifar-10-binary.tar.gz", tmp_path / "src" / "cifar-10-batches-bin", "cifar-10-batches-bin")
    root = tmp_path / "data"
    md5 = "md5:" + hashlib.md5((www / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    download_dataset("cifar10", root, base_url=url, checksums={"cifar-10-binary.tar.gz": md5}, progress=False)
    b = load_data("cifar10", root=str(root), augment=False)
    torch.testing.assert_close(b.targets("test"), torch.from_numpy(written["test_batch.bin"][1]).long(), rtol=0, atol=0)


def test_wrong_checksum_deletes_temp_and_names_hashes(server, tmp_path: Path, fakes) -> None:
    url, www = server
    fakes.write_mnist(www, compress=True)
    sums = {f.name: _sha(www / f.name) for f in KNOWN_FILES["mnist"]}
    sums["t10k-images-idx3-ubyte.gz"] = "sha256:" + "0" * 64
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        download_dataset("mnist", root, base_url=url, checksums=sums, progress=False)
    msg = str(err.value)
    actual = hashlib.sha256((www / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert "t10k-images-idx3-ubyte.gz" in msg and "0" * 64 in msg and actual in msg
    assert not (root / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert not list((root / "mnist").glob("*.part"))


def test_missing_remote_file_and_bad_digest(server, tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(DataError, match="failed"):
        download_dataset("mnist", tmp_path, base_url=url, progress=False)
    with pytest.raises(ConfigError):
        parse_digest("sha1:abc")
    assert parse_digest("A" * 64) == ("sha256", "a" * 64)


def test_known_digests_are_well_formed() -> None:
    for files in KNOWN_FILES.values():
        for f in files:
            algo, value = parse_digest(f.digest)
            assert algo == "sha256" and len(value) == 64


def test_cli_download_prints_files_and_sizes(server, tmp_path: Path, fakes, capsys) -> None:
    url, www = server
    fakes.write_mnist(www, compress=True)
    import leandl.data.download as dl

    patched = tuple(dl.RemoteFile(f.name, f.base_url, _sha(www / f.name)) for f in KNOWN_FILES["mnist"])
    original = dict(KNOWN_FILES)
    KNOWN_FILES["mnist"] = patched
    try:
        rc = cli_main(["data", "download", "mnist", "--root", str(tmp_path / "d"), "--base-url", url])
    finally:
        KNOWN_FILES.clear()
        KNOWN_FILES.update(original)
    out = capsys.readouterr()
    assert rc == 0, out.err
    size = (www / "train-labels-idx1-ubyte.gz").stat().st_size
    assert "train-labels-idx1-ubyte.gz" in out.out and f"({size} bytes)" in out.out
    rc = cli_main(["data", "download", "mnist", "--root", str(tmp_path / "e"), "--base-url", url])
    assert rc == 1 and "checksum mismatch" in capsys.readouterr().err
