"""A container's view of its files for the commands exec runs, without a mount namespace.

A real container sees its volumes at their ``mountPath``; localmesh's containers are host
processes whose volumes are directories in the pod's folder (``LOCALMESH_MOUNTS``, JSON
``mountPath → directory``). Two things make exec'd commands see the mounts anyway:

- :func:`translate_argv`: an argument that is a mount path, or a path below one, is
  rewritten to the directory behind it (``cat /data/x`` reads the volume's file);
- ``tar`` — what ``kubectl cp`` runs, ``tar -xmf - [-C dir]`` into the container and
  ``tar cf - <path>`` out of it — is this module's own (``python -m
  localmesh.kubelet.containerfs tar …``): it reads and writes through the mounts while the
  archive names members as the container sees them (``data/x``, not the host folder), as
  kubectl expects when it strips the path it asked for. Other tar invocations run the
  host's tar with translated arguments.

Paths outside every mount are the host's own, as for any exec in localmesh (docs/images.md).
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections.abc import Mapping, Sequence


def mounts(env: Mapping[str, str] | None = None) -> dict[str, str]:
    raw = (env if env is not None else os.environ).get("LOCALMESH_MOUNTS") or "{}"
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return {str(k).rstrip("/") or "/": str(v) for k, v in found.items()}


def translate(path: str, table: Mapping[str, str]) -> str:
    """A container path → the host path behind it (longest mount first)."""
    if not path.startswith("/"):
        return path
    for mount in sorted(table, key=len, reverse=True):
        if mount == "/":
            continue
        if path == mount or path.startswith(mount + "/"):
            return table[mount] + path[len(mount):]
    return path


def translate_argv(argv: Sequence[str], table: Mapping[str, str]) -> list[str]:
    """Arguments naming a mounted path rewritten; the program name is left alone."""
    if not table:
        return list(argv)
    return [argv[0], *(translate(a, table) for a in argv[1:])] if argv else []


def _extract(directory: str, table: Mapping[str, str], touch: bool) -> int:
    """``tar -x``: ``touch`` (``-m``) leaves extracted files with the current time."""
    target = translate(directory, table)
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as archive:
        for member in archive:
            name = member.name.lstrip("/")
            if ".." in name.split("/"):
                print(f"tar: skipping {member.name}: it leaves the directory",
                      file=sys.stderr)
                continue
            # A member may name a mounted path itself (``-C /`` and ``data/x``).
            dest = translate("/" + name, table) if directory == "/" else \
                os.path.join(target, name)
            if member.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            if not (member.isfile() or member.issym()):
                continue
            os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
            if member.issym():
                if os.path.lexists(dest):
                    os.unlink(dest)
                os.symlink(member.linkname, dest)
                continue
            source = archive.extractfile(member)
            assert source is not None
            with open(dest, "wb") as f:
                while chunk := source.read(65536):
                    f.write(chunk)
            os.chmod(dest, member.mode & 0o7777)
            if not touch:
                os.utime(dest, (member.mtime, member.mtime))
    return 0


def _create(paths: Sequence[str], directory: str | None,
            table: Mapping[str, str]) -> int:
    status = 0
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT) as out:
        for path in paths:
            container_path = os.path.join(directory, path) if directory else path
            host = translate(container_path if container_path.startswith("/")
                             else os.path.abspath(container_path), table)
            if not os.path.lexists(host):
                print(f"tar: {path}: Cannot stat: No such file or directory", file=sys.stderr)
                status = 2
                continue
            out.add(host, arcname=path.lstrip("/") or ".", recursive=True)
    return status


def tar(args: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """The tar invocations kubectl cp makes, through the container's mounts."""
    table = mounts(env)
    flags = ""
    rest: list[str] = []
    directory: str | None = None
    i = 0
    extras: list[str] = []
    while i < len(args):
        a = args[i]
        if a in ("-C", "--directory") and i + 1 < len(args):
            directory = args[i + 1]
            i += 2
            continue
        if a.startswith("--"):
            extras.append(a)
        elif a.startswith("-") and a != "-":
            flags += a[1:]
        elif not flags and not rest and a.isalpha():
            flags += a  # old-style "cf"
        else:
            rest.append(a)
        i += 1
    understood = set(extras) <= {"--no-same-permissions", "--no-same-owner"}
    if understood and "x" in flags and "f" in flags and rest[:1] == ["-"]:
        return _extract(directory or os.getcwd(), table, touch="m" in flags)
    if understood and "c" in flags and "f" in flags and rest[:1] == ["-"] and rest[1:]:
        return _create(rest[1:], directory, table)
    host = ["tar", *translate_argv(["tar", *args], table)[1:]]
    os.execvp("tar", host)


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] != "tar":
        print("usage: python -m localmesh.kubelet.containerfs tar ARGS…", file=sys.stderr)
        return 2
    return tar(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
