#!/usr/bin/python3
"""A stand-in for the ferry CLI in the unit tests (FERRY_BIN points here).

It logs each call's argv (FAKE_FERRY_LOG, one JSON list a line) and:
- FAKE_FERRY_RC / FAKE_FERRY_ERR set: fails with that exit code and stderr;
- FAKE_FERRY_OUT set: prints that file's content;
- else emulates submit, sweep, status, logs, cancel and sweep show with job
  dirs under FAKE_FERRY_SPOOL: a job "runs" at once, synchronously, by
  executing its command in a copy of DIR with FERRY_OUTPUTS=<jobdir>/outputs
  (like the sandbox, minus the container), then writes result.json.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid


def log(argv):
    p = os.environ.get("FAKE_FERRY_LOG")
    if p:
        with open(p, "a") as f:
            f.write(json.dumps(argv) + "\n")


def spool():
    return os.environ["FAKE_FERRY_SPOOL"]


def parse(args):
    """Flags before DIR, then DIR, then -- CMD."""
    flags, pos, cmd = {}, [], []
    if "--" in args:
        i = args.index("--")
        args, cmd = args[:i], args[i + 1:]
    it = iter(args)
    for a in it:
        if a.startswith("-"):
            if a in ("--wait", "-f", "--follow"):
                flags[a] = True
            else:
                flags.setdefault(a, []).append(next(it))
        else:
            pos.append(a)
    return flags, pos, cmd


def run_job(src, cmd, params, env_extra):
    jid = uuid.uuid4().hex[:26]
    d = os.path.join(spool(), jid)
    os.makedirs(os.path.join(d, "outputs"))
    scratch = os.path.join(d, "scratch")
    shutil.copytree(src, scratch)
    with open(os.path.join(scratch, "ferry_params.json"), "w") as f:
        json.dump(params, f)
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params, f)
    env = dict(os.environ, FERRY_JOB_ID=jid, FERRY_OUTPUTS=os.path.join(d, "outputs"),
               FERRY_PARAMS=json.dumps(params), FERRY_PARAMS_FILE=os.path.join(scratch, "ferry_params.json"),
               **env_extra)
    with open(os.path.join(d, "log"), "w") as logf:
        if cmd and cmd[0] == "python3":
            cmd = [os.environ.get("FAKE_FERRY_PYTHON", sys.executable), *cmd[1:]]
        rc = subprocess.call(cmd, cwd=scratch, env=env, stdout=logf, stderr=logf) if cmd else 0
    state = "succeeded" if rc == 0 else "failed"
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump({"state": state, "reason": f"exited with code {rc}", "exit_code": rc}, f)
    return jid, d


def main():
    argv = sys.argv[1:]
    log(argv)
    if os.environ.get("FAKE_FERRY_RC"):
        sys.stderr.write(os.environ.get("FAKE_FERRY_ERR", "ferry: failed\n"))
        return int(os.environ["FAKE_FERRY_RC"])
    if os.environ.get("FAKE_FERRY_OUT"):
        with open(os.environ["FAKE_FERRY_OUT"]) as f:
            sys.stdout.write(f.read())
        return 0
    cmd = argv[0]
    rest = [a for a in argv[1:] if a not in ("-o", "json")] if cmd != "get" else argv[1:]
    if cmd == "submit":
        flags, pos, command = parse(rest)
        params = {}
        for p in flags.get("--params", []):
            with open(p) as f:
                params.update(json.load(f))
        env = dict(e.split("=", 1) for e in flags.get("--env", []))
        jid, d = run_job(pos[0], command, params, env)
        print(json.dumps({"id": jid, "slurm_id": "1", "dir": d, "project": os.path.basename(pos[0])}))
        return 0
    if cmd == "sweep" and rest and rest[0] == "show":
        sid = [a for a in rest[1:] if not a.startswith("-")][0]
        with open(os.path.join(spool(), "sweep-" + sid + ".json")) as f:
            doc = json.load(f)
        rows = []
        for t in doc["tasks"]:
            with open(os.path.join(t["dir"], "result.json")) as f:
                st = json.load(f)["state"]
            metrics = {}
            mp = os.path.join(t["dir"], "outputs", "metrics.jsonl")
            if os.path.exists(mp):
                for line in open(mp):
                    m = json.loads(line)
                    metrics[m["name"]] = m["value"]
            rows.append({"index": t["index"], "id": t["id"], "state": st, "params": t["params"], "metrics": metrics})
        sort = [a.split("=", 1)[1] for a in rest if a.startswith("--sort=")]
        if sort:  # as the real CLI: -METRIC descending, tasks without it last
            metric, desc = sort[0].lstrip("-"), sort[0].startswith("-")
            have = [r for r in rows if isinstance(r["metrics"].get(metric), (int, float))]
            rest_rows = [r for r in rows if r not in have]
            have.sort(key=lambda r: r["metrics"][metric], reverse=desc)
            rows = have + rest_rows
        print(json.dumps({"id": sid, "tasks": rows}))
        return 0
    if cmd == "sweep":
        flags, pos, command = parse(rest)
        if "--params-list" in flags:
            with open(flags["--params-list"][0]) as f:
                plist = json.load(f)
        else:
            # A grid spec, as the real CLI reads it (JSON is YAML); the
            # real CLI's refusal of an unknown top-level key too.
            with open(flags["--spec"][0]) as f:
                spec = json.load(f)
            for k in spec:
                if k not in ("method", "count", "seed", "params"):
                    sys.stderr.write(f'ferry: sweep spec {flags["--spec"][0]}: unknown key "{k}" (known: method, count, seed, params)\n')
                    return 2
            plist = [{}]
            for name, values in spec["params"].items():
                plist = [dict(p, **{name: v}) for p in plist for v in values]
        sid = "sw" + uuid.uuid4().hex[:10]
        tasks = []
        for i, p in enumerate(plist):
            jid, d = run_job(pos[0], command, p, {})
            tasks.append({"index": i, "id": jid, "dir": d, "params": p})
        doc = {"id": sid, "project": os.path.basename(pos[0]), "tasks": tasks,
               "arrays": [{"slurm_id": "7", "first": 0, "last": len(tasks) - 1}]}
        with open(os.path.join(spool(), "sweep-" + sid + ".json"), "w") as f:
            json.dump(doc, f)
        print(json.dumps(doc))
        return 0
    if cmd in ("status", "logs", "cancel", "get"):
        jid = rest[-1] if cmd != "get" else rest[0]
        d = os.path.join(spool(), jid)
        if not os.path.isdir(d):
            sys.stderr.write(f'ferry: no job "{jid}": job not found\n')
            return 4
        if cmd == "status":
            st = {"id": jid, "dir": d, "state": "running"}
            if os.path.exists(os.path.join(d, "result.json")):
                with open(os.path.join(d, "result.json")) as f:
                    st.update(json.load(f))
            print(json.dumps(st))
        elif cmd == "logs":
            with open(os.path.join(d, "log")) as f:
                sys.stdout.write(f.read())
        elif cmd == "get":
            dest = rest[rest.index("-o") + 1] if "-o" in rest else "ferry-" + jid
            shutil.copytree(os.path.join(d, "outputs"), os.path.join(dest, "outputs"))
        return 0
    sys.stderr.write(f"ferry: unknown command {cmd!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
