"""A Windows Python process the tests drive line by line (run by the lab's python.exe under Wine).

Each stdin line is a JSON object {"code": "...", "vars": {...}}: the code runs in one namespace kept for
the agent's life (so file handles, locks and loaded modules stay held between calls), with `vars` bound
first. The reply, one JSON line on stdout, is {"ok": true, "value": <the namespace's `result`>} or
{"ok": false, "type": ..., "message": ..., "winerror": ..., "cause": ...}. Code that prints writes to
stderr, so stdout carries only replies. EOF on stdin ends the agent; the OS releases what it held.
Standard library only, plus whatever the code imports (ci_cache is installed in the lab's Python).
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, TextIO


def _describe(exc: BaseException) -> dict[str, Any]:
    cause = exc.__cause__ or exc.__context__
    return {
        "ok": False,
        "type": type(exc).__name__,
        "message": str(exc),
        "hint": getattr(exc, "hint", None),
        "winerror": getattr(exc, "winerror", None),
        "cause": None if cause is None else {"type": type(cause).__name__, "message": str(cause),
                                             "winerror": getattr(cause, "winerror", None)},
        "traceback": traceback.format_exc(),
    }


def serve(lines: TextIO, replies: TextIO) -> None:
    namespace: dict[str, Any] = {"__name__": "__agent__"}
    for line in lines:
        if not line.strip():
            continue
        request = json.loads(line)
        namespace.update(request.get("vars") or {})
        namespace["result"] = None
        try:
            exec(request["code"], namespace)
            reply: dict[str, Any] = {"ok": True, "value": namespace.get("result")}
        except BaseException as exc:  # report everything, SystemExit included: the agent must answer
            reply = _describe(exc)
        replies.write(json.dumps(reply, default=str) + "\n")
        replies.flush()


if __name__ == "__main__":
    out = sys.stdout
    sys.stdout = sys.stderr
    out.write(json.dumps({"ok": True, "value": "ready"}) + "\n")
    out.flush()
    serve(sys.stdin, out)
