"""Run every notebook top to bottom in a running Jupyter server, as a learner's "Run All" does, and time each.

    ./dev notebook --no-browser --port 8890 --IdentityProvider.token=TOKEN &     # the server, as a learner starts it
    ./dev python benchmarks/notebooks.py --url http://127.0.0.1:8890 --token TOKEN [5.5-lenet ...]

For each notebook the server starts a kernel (POST /api/sessions, the notebook's own kernel); this script sends
the notebook's code cells to it one after another over the kernel's websocket, with the notebook's default
parameters, and stops at the first cell that fails, printing its error. Printed: each notebook's seconds from its
first cell to its last, and whether every cell ran. The kernels are shut down afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parents[1]


def api(url: str, token: str, method: str, path: str, body: dict | None = None) -> dict | None:
    data = json.dumps(body).encode() if body is not None else None
    request = Request(f"{url}{path}", data=data, method=method, headers={"Authorization": f"token {token}"})
    with urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else None


def message(session: str, code: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    return msg_id, json.dumps({
        "header": {"msg_id": msg_id, "username": "minicnn", "session": session, "msg_type": "execute_request",
                   "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    })  # fmt: skip


async def run_cells(url: str, token: str, kernel: str, cells: list[str]) -> tuple[bool, str]:
    """Execute `cells` in kernel `kernel` one by one; (all ran, the error of the first that failed, or '')."""
    from tornado.websocket import websocket_connect

    ws_url = url.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels?token={token}"
    socket = await websocket_connect(ws_url)
    session = uuid.uuid4().hex
    try:
        for code in cells:
            msg_id, text = message(session, code)
            await socket.write_message(text)
            while True:
                reply = json.loads(await socket.read_message())
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = reply["header"]["msg_type"], reply["content"]
                if kind == "execute_reply":
                    if content["status"] != "ok":
                        return False, f"{content.get('ename')}: {content.get('evalue')}"
                    break
    finally:
        socket.close()
    return True, ""


def run_notebook(url: str, token: str, path: Path) -> tuple[float, bool, str]:
    notebook = json.loads(path.read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    body = {"path": path.name, "type": "notebook", "name": path.name, "kernel": {"name": "python3"}}
    started = api(url, token, "POST", "/api/sessions", body)
    try:
        start = time.perf_counter()
        ok, error = asyncio.run(run_cells(url, token, started["kernel"]["id"], cells))
        return time.perf_counter() - start, ok, error
    finally:
        api(url, token, "DELETE", f"/api/sessions/{started['id']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="names in notebooks/ (default: all)")
    p.add_argument("--url", default="http://127.0.0.1:8890")
    p.add_argument("--token", required=True)
    args = p.parse_args()
    names = args.notebooks or sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    print(f"# notebooks run in the Jupyter server at {args.url}, default parameters")
    failed = False
    for name in names:
        seconds, ok, error = run_notebook(args.url, args.token, ROOT / "notebooks" / f"{name}.ipynb")
        print(f"{name:18} {seconds:8.1f} s  {'every cell ran' if ok else 'FAILED: ' + error}", flush=True)
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
