from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from leandl.data import safe_extract
from leandl.errors import DataError


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_extracts_regular_tar_and_zip(tmp_path: Path, fakes) -> None:
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(b"abc")
    fakes.tar_gz(tmp_path / "t.tar.gz", src, "pkg")
    files = safe_extract(tmp_path / "t.tar.gz", tmp_path / "out")
    assert [p.name for p in files] == ["a.bin"] and (tmp_path / "out" / "pkg" / "a.bin").read_bytes() == b"abc"
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("d/b.txt", "hi")
    safe_extract(tmp_path / "z.zip", tmp_path / "zout")
    assert (tmp_path / "zout" / "d" / "b.txt").read_text() == "hi"


@pytest.mark.parametrize(
    "member, kind, match",
    [
        ("../evil", {}, r"'\.\.'"),
        ("ok/../../evil", {}, r"'\.\.'"),
        ("/abs/path/evil", {}, "absolute"),
        ("link", {"linkname": "/etc/passwd"}, "link"),
    ],
)
def test_refuses_escaping_tar_members(tmp_path: Path, fakes, member: str, kind: dict, match: str) -> None:
    arch = fakes.tar_with_member(tmp_path / "bad.tar.gz", member, **kind)
    dest = tmp_path / "sandbox" / "dest"
    before = _tree(tmp_path)
    with pytest.raises(DataError, match=match):
        safe_extract(arch, dest)
    assert _tree(tmp_path) == before  # nothing written, not even dest
    assert not (tmp_path / "sandbox" / "evil").exists() and not Path("/abs/path/evil").exists()


def test_refuses_zip_traversal_and_non_archives(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("good.txt", "x")
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match=r"'\.\.'"):
        safe_extract(tmp_path / "z.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(DataError, match="not a tar or zip"):
        safe_extract(tmp_path / "plain.txt", tmp_path / "out")
