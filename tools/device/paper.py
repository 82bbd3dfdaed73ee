"""Device call: train the paper-scale VGG runs (one seed) K at a time until a deadline, then pack the
finished run folders (without checkpoint.pt) into $OUT/runs_N.tar.gz (<= 15 MiB each) + logs."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bnopt import reproduce

budget, K = float(sys.argv[1]), int(sys.argv[2])
SCALE = sys.argv[3] if len(sys.argv) > 3 else "paper"
t_start = time.time()
deadline = t_start + budget
OUT = Path(os.environ["OUT"])
results = Path("results")
logs = Path("/tmp/runlogs")
logs.mkdir(exist_ok=True)
PRIORITY = [
    ("vgg16_bn", 0.1), ("vgg16", 0.1), ("vgg16_bn", 0.5), ("vgg16", 0.5), ("vgg16_noisy_bn", 0.1),
    ("vgg16_l2", 0.1), ("vgg16_l1", 0.1), ("vgg16_linf", 0.1), ("vgg16_bn", 0.01), ("vgg16", 0.01),
]
runs = [r for r in reproduce.plan(None, SCALE, results, reproduce.seed_overrides(1)) if r.cfg.model.family == "vgg"]
rank = {k: i for i, k in enumerate(PRIORITY)}
runs.sort(key=lambda r: rank.get((r.cfg.model.name, float(r.cfg.optim.lr)), 99))
print("plan:", [(r.run_id, r.state) for r in runs], flush=True)
queue = [r for r in runs if not r.done]
procs, info = {}, {}
while (queue or procs) and time.time() < deadline:
    while queue and len(procs) < K:
        r = queue.pop(0)
        cmd = [sys.executable, "-m", "bnopt.train", *r.overrides, "logger=none"]
        f = open(logs / f"{r.run_id}.log", "w")
        procs[r.run_id] = (subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True), f)
        info[r.run_id] = {"label": r.label, "started_s": round(time.time() - t_start, 1)}
        print(f"[{time.time() - t_start:6.1f}s] start {r.run_id}", flush=True)
    for rid, (p, f) in list(procs.items()):
        if p.poll() is not None:
            f.close()
            info[rid].update(code=p.returncode, ended_s=round(time.time() - t_start, 1))
            print(f"[{time.time() - t_start:6.1f}s] end {rid} code {p.returncode}", flush=True)
            del procs[rid]
    time.sleep(1)
for rid, (p, f) in procs.items():
    os.killpg(p.pid, signal.SIGTERM)
for rid, (p, f) in procs.items():
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
    f.close()
    info[rid].update(code="killed at deadline", ended_s=round(time.time() - t_start, 1))
for rid in info:
    st = results / "runs" / rid / "status.json"
    info[rid]["status"] = json.loads(st.read_text()) if st.exists() else None
(OUT / "summary.json").write_text(json.dumps(info, indent=2))
done = [rid for rid in info if (info[rid]["status"] or {}).get("status") in ("done", "diverged")]
part, size, n = None, 0, 0
for rid in done:
    folder = results / "runs" / rid
    files = [p for p in folder.rglob("*") if p.is_file() and p.name not in ("checkpoint.pt", ".lock") and "wandb" not in p.parts]
    add = sum(p.stat().st_size for p in files)
    if part is None or size + add > 14 * 2**20:
        if part:
            part.close()
        n += 1
        part, size = tarfile.open(OUT / f"runs_{n}.tar.gz", "w:gz"), 0
    for p in files:
        part.add(p, arcname=str(p.relative_to(results / "runs")))
    size += add
if part:
    part.close()
with tarfile.open(OUT / "logs.tar.gz", "w:gz") as t:
    t.add(logs, arcname="runlogs")
print(f"packed {len(done)} finished runs into {n} tarball(s); {time.time() - t_start:.0f} s", flush=True)
