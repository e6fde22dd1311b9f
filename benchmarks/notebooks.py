"""Run every notebook top to bottom in a running Jupyter server, as a learner's "Run All" does, and time each.

    ./dev notebook --no-browser --port 8890 --IdentityProvider.token=TOKEN &     # the server, as a learner starts it
    ./dev python benchmarks/notebooks.py --url http://127.0.0.1:8890 --token TOKEN [5.5-lenet ...]

For each notebook the server starts a kernel (POST /api/kernels, in the notebooks' directory, as opening the
notebook does); this script connects to it through the connection file the server wrote for it (jupyter_client)
and sends the notebook's code cells one after another, with the notebook's default parameters, stopping at the
first cell that fails and printing its error. Printed: each notebook's seconds from its first cell to its last,
and whether every cell ran. The kernels are shut down afterwards. Run it as the server's user on the server's
machine: the connection files are in that user's Jupyter runtime directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.request import Request, urlopen

ROOT = Path(__file__).resolve().parents[1]


def api(url: str, token: str, method: str, path: str, body: dict | None = None) -> dict | None:
    data = json.dumps(body).encode() if body is not None else None
    request = Request(f"{url}{path}", data=data, method=method, headers={"Authorization": f"token {token}"})
    with urlopen(request, timeout=60) as response:
        text = response.read()
    return json.loads(text) if text else None


def run_cells(kernel_id: str, cells: list[str]) -> tuple[bool, str]:
    """Execute `cells` in the server's kernel `kernel_id` one by one; (all ran, the first failure's error or '')."""
    from jupyter_client import BlockingKernelClient
    from jupyter_core.paths import jupyter_runtime_dir

    client = BlockingKernelClient(connection_file=str(Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        for code in cells:
            reply = client.execute_interactive(code, timeout=3600, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                return False, f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
    finally:
        client.stop_channels()
    return True, ""


def run_notebook(url: str, token: str, path: Path) -> tuple[float, bool, str]:
    notebook = json.loads(path.read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    kernel = api(url, token, "POST", "/api/kernels", {"name": "python3", "path": ""})  # the server's root: notebooks/
    try:
        start = time.perf_counter()
        ok, error = run_cells(kernel["id"], cells)
        return time.perf_counter() - start, ok, error
    finally:
        api(url, token, "DELETE", f"/api/kernels/{kernel['id']}")


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
