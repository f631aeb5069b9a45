"""Two builds of the extension side by side: the string-id pool construction of
``bench_sampling.py`` (10 million rows by default) timed with build A, then B, then A...,
each run in its own process, so that a change to the Rust core is judged against the build
before it on the same machine in the same minutes (this project's VMs drift between runs).

Each build is a compiled ``_core`` extension (for instance unpacked from
``maturin build --release`` wheels); it is run inside a temporary copy of the package.

Run: ``python benches/ab_builds.py BEFORE.so AFTER.so [--runs 3] [--repeats 5]
[--inputs pyarrow,numpy]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
PACKAGE = BENCHES.parent / "python" / "hybridrs"


def worker(kind: str, groups: int, repeats: int) -> None:
    """Times ``PairPool.from_arrays`` on one input kind; prints JSON (wall and CPU seconds)."""
    sys.path.insert(0, str(BENCHES))
    from bench_sampling import make_rows, string_inputs
    from hybridrs import PairPool

    g, lg = string_inputs(*make_rows(groups, 10))[kind]
    wall, cpu = [], []
    for _ in range(repeats):
        c, t = time.process_time(), time.perf_counter()
        PairPool.from_arrays(g, lg)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(json.dumps({"wall": min(wall), "cpu": min(cpu)}))


def package_with(build: Path, root: Path) -> Path:
    """A copy of the package under ``root`` with ``build`` as its extension."""
    dst = root / "hybridrs"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    shutil.copy2(build, dst / "_core.abi3.so")
    return root


#: The input kinds of ``bench_sampling.string_inputs`` that ``--inputs`` can name.
KINDS = ("lists", "numpy", "objects", "pyarrow")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="the extension built before the change")
    ap.add_argument("after", type=Path, help="the extension built after it")
    ap.add_argument("--runs", type=int, default=3, help="alternations of A and B")
    ap.add_argument("--repeats", type=int, default=5, help="builds per run (best is kept)")
    ap.add_argument("--groups", type=int, default=1_112_000)
    ap.add_argument("--inputs", default="pyarrow,numpy", help="of " + ", ".join(KINDS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.groups, args.repeats)
        return
    for so in (args.before, args.after):
        if not so.is_file():
            ap.error(f"no extension file at {so}")
    kinds = [k.strip() for k in args.inputs.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        ap.error(f"--inputs takes {', '.join(KINDS)}, got {args.inputs!r}")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {
            name: package_with(so, Path(tmp) / name)
            for name, so in (("A", args.before), ("B", args.after))
        }
        print(f"A = {args.before}\nB = {args.after}")
        print(f"{args.groups:,} groups x 10 languages; best of {args.repeats} builds per run")
        print(
            f"{'run':>3s} {'input':8s} {'A wall s':>9s} {'B wall s':>9s} {'B / A':>6s}"
            f" {'A cpu s':>8s} {'B cpu s':>8s}"
        )
        for run in range(args.runs):
            for kind in kinds:
                res = {}
                for name, root in roots.items():
                    env = dict(os.environ, PYTHONPATH=str(root))
                    cmd = [
                        sys.executable,
                        __file__,
                        "x",
                        "x",
                        "--worker",
                        kind,
                        "--groups",
                        str(args.groups),
                        "--repeats",
                        str(args.repeats),
                    ]
                    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                    res[name] = json.loads(out.stdout.strip().splitlines()[-1])
                a, b = res["A"], res["B"]
                print(
                    f"{run + 1:3d} {kind:8s} {a['wall']:9.3f} {b['wall']:9.3f}"
                    f" {b['wall'] / a['wall']:6.2f} {a['cpu']:8.3f} {b['cpu']:8.3f}"
                )


if __name__ == "__main__":
    main()
