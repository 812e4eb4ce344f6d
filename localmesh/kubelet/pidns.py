"""``kill`` inside a localmesh container, with a container's PID numbering.

A container has its own PID namespace, where its program is PID 1, so ``kubectl exec
<pod> -c app -- kill 1`` stops the app. localmesh runs containers as plain process
groups; this tool gives ``kill`` that meaning: PID 1 (or 0, the group) is the container's
process group, given by the kubelet in ``LOCALMESH_CONTAINER_PGID``. Any other PID is not
in the container and is refused, as it would not exist in the container's namespace —
so a ``kill`` here can never reach a process outside the container.
"""

from __future__ import annotations

import os
import signal
import sys


def kill(argv: list[str]) -> int:
    sig = signal.SIGTERM
    pids: list[str] = []
    for a in argv:
        if a.startswith("-") and a != "-":
            name = a[1:].upper().removeprefix("SIG")
            try:
                sig = signal.Signals(int(name)) if name.isdigit() else signal.Signals[
                    f"SIG{name}"]
            except (KeyError, ValueError):
                print(f"kill: unknown signal {a}", file=sys.stderr)
                return 1
        else:
            pids.append(a)
    pgid = os.environ.get("LOCALMESH_CONTAINER_PGID")
    if not pids:
        print("usage: kill [-SIGNAL] PID", file=sys.stderr)
        return 1
    code = 0
    for pid in pids:
        if pid not in ("1", "0") or not pgid:
            print(f"kill: ({pid}) - No such process", file=sys.stderr)
            code = 1
            continue
        try:
            os.killpg(int(pgid), sig)
        except ProcessLookupError:
            print(f"kill: ({pid}) - No such process", file=sys.stderr)
            code = 1
    return code


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["kill"]:
        return kill(args[1:])
    print("usage: python -m localmesh.kubelet.pidns kill [-SIGNAL] PID", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
