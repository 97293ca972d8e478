#!/usr/bin/env python3
"""taskapi benchmark: the API under wrk, side by side with PostgreSQL's own ceiling.

Starts a release build of taskapi on a throwaway private PostgreSQL, seeds it through the
API, drives each scenario with wrk at several concurrencies, and runs the statements the
scenario's requests issue (the binary's own texts, pipelined like the API's) directly through
pgbench with the same number of connections. Prints requests/s, latency, errors, the server's
peak RSS, the ratio to the ceiling, and CPU time per request of the server and of PostgreSQL
(and of PostgreSQL per ceiling transaction); checks through pg_stat_statements that each
ceiling issued what the API did. Results go to bench/results/ as JSON and an SVG chart.
Standard library only.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "wrk" / "scenario.lua"
PASSWORD = "benchmark passphrase 42"
SCENARIOS = ["list", "list_project", "list_label", "get", "create", "patch", "changes",
             "create_idem", "mixed", "login",
             "health"]

# The ceiling: pgbench runs, for each scenario, the statements its request issues, with the
# very texts the binary prepares (printed by `examples/statements.rs` from
# `store::all_statements()`), bound to the same kinds of values, pipelined the same way
# (the session statement and the route's statements, closed by one `Sync`, which makes them
# one implicit transaction: src/store/mod.rs, src/db/pipeline.rs) and as
# the same role (taskapi_app, under row-level security). Which statements a route issues, and
# in which order, is read from the code (src/store/*.rs); the check after every ceiling run
# (pg_stat_statements, `compare_statements`) says whether the two still agree.
#
# pgbench cannot bind a NULL (a NULL variable is sent as the text "NULL"), so where the API
# binds NULL the ceiling's text has the literal NULL in that parameter's place; PostgreSQL
# normalises both to a placeholder, so the check sees the same statement.
PARAM = re.compile(r"\$(\d+)")


class Statements:
    """The binary's statement texts, found by fragments that must single out one."""

    def __init__(self, texts):
        # Two modules may prepare the same text (it is prepared once).
        self.texts = list(dict.fromkeys(texts))

    def find(self, *fragments):
        found = [t for t in self.texts if all(f in t for f in fragments)]
        if len(found) != 1:
            raise RuntimeError(f"{len(found)} statements contain {fragments!r}: the bench's "
                               "recipes no longer match src/store (fix scenario_sql)")
        return found[0]


def bind(sql, values):
    """`sql` with `$k` replaced by pgbench variable `values[k - 1]`, or NULL for None."""
    used = {int(k) for k in PARAM.findall(sql)}
    if used != set(range(1, len(values) + 1)):
        raise RuntimeError(f"binding {len(values)} values to a statement using ${sorted(used)}: {sql}")

    def value(match):
        name = values[int(match.group(1)) - 1]
        return "NULL" if name is None else f":{name}"
    return PARAM.sub(value, sql) + ";"


# Values the scenarios' requests send (bench/wrk/scenario.lua), as pgbench variables (-D).
# uid, task and project come from the bench_users lookup; k (an idempotency key) from \set.
# The label the `list_label` scenario filters by; about half of the seeded tasks carry it.
BENCH_LABEL = "work"
PRIORITIES = ("low", "medium", "high", "urgent")
CONSTANTS = {
    "tv": "1",                                      # token version
    "jti": "00000000-0000-0000-0000-000000000000",  # token id (none is revoked)
    "fetch": "21", "offset": "0",                   # limit=20: one row more, for next_cursor
    "label": BENCH_LABEL,
    "title": "Benchmark task", "description": "created under load", "status": "todo",
    "priority": "high", "due": "2027-01-15T09:00:00Z", "labels": "{}",
    "route": "tasks", "digest": "\\x" + "ab" * 32,
    "claim": "00000000-0000-4000-8000-000000000001",
    "no": "false",
    # The change feed after the cursor taken when the user's project was created (its first
    # change: counter value 1); limit=100, so 101 rows.
    "seq": "1", "kind": "project", "feed_limit": "101",
    **{f"p_{p}": p for p in PRIORITIES},
}
# A client keeps its user for about this many transactions (a lookup costs a statement and a
# round trip of its own; docs/PERFORMANCE.md measures it with --lookup-rounds).
REFRESH = 50
LOOKUP = ("\\set r random(1, :refresh)\n"
          "\\if :fresh = 1 or :r = 1\n"
          "\\set n random(1, :users)\n"
          "SELECT id AS uid, task, project FROM bench_users WHERE n = :n \\gset\n"
          "\\set fresh 0\n"
          "\\endif\n")


def scenario_sql(s):
    """Per pgbench script: (the session statement, the route's statements, a prelude)."""
    caller = ["uid", "tv", "jti"]
    session = (s.find("SELECT set_config('taskapi.user_id', u.id::text, true) FROM users u"), caller)
    writing = (s.find("UPDATE users u SET change_seq = u.change_seq + 1"), caller)
    # INSERT's $1..$8: owner, title, description, status, priority, due_at, project, labels.
    new_task = ["uid", "title", "description", "status", "priority", "due", None, "labels"]
    newest = "ORDER BY created_at DESC, id DESC LIMIT $"
    scripts = {
        # GET /tasks?limit=20: the owner's newest, and the trigger-kept total (src/store/tasks.rs).
        "list": (session, [
            (s.find("FROM tasks WHERE owner_id = $1 " + newest + "2 OFFSET $3"), ["uid", "fetch", "offset"]),
            (s.find("SELECT task_count::int8 FROM users WHERE id = $1"), ["uid"])], ""),
        "list_project": (session, [
            (s.find("FROM tasks WHERE owner_id = $1 AND project_id = $2 " + newest + "3 OFFSET $4"),
             ["uid", "project", "fetch", "offset"]),
            (s.find("SELECT task_count::int8 FROM projects"), ["uid", "project"])], ""),
        "list_label": (session, [
            (s.find("FROM tasks WHERE owner_id = $1 AND labels @> ARRAY[$2::text] " + newest + "3 OFFSET $4"),
             ["uid", "label", "fetch", "offset"]),
            (s.find("FROM label_counts WHERE owner_id = $1 AND label = $2"), ["uid", "label"])], ""),
        "get": (session, [(s.find("SELECT id, title", "FROM tasks WHERE id = $1 AND owner_id = $2"),
                           ["task", "uid"])], ""),
        "create": (writing, [(s.find("INSERT INTO tasks (owner_id", "VALUES ($1"), new_task)], ""),
        "changes": (session, [(s.find("SELECT c.kind, c.deleted", "FROM changes c"),
                               ["uid", "seq", "kind", "project", "no", "feed_limit"])], ""),
        # A fresh key each time: the claim, the conditional create, the earlier response
        # (src/store/idempotency.rs).
        "create_idem": (writing, [
            (s.find("INSERT INTO idempotency_keys"), ["uid", "route", "k", "digest", "claim"]),
            (s.find("WITH created AS", "INSERT INTO tasks"), new_task + ["k", "claim"]),
            (s.find("jsonb_populate_record(NULL::tasks"), ["uid", "k", "claim"])],
            "\\set k random(1, 2000000000)\n"),
    }
    # PATCH {"priority": …} without If-Match: versions, and every field but priority, NULL
    # (no existence check follows: src/store/tasks.rs `update`). One script per priority, as
    # the requests pick one at random.
    update = s.find("UPDATE tasks SET title = COALESCE($4::text, title)")
    for p in PRIORITIES:
        scripts[f"patch_{p}"] = (writing, [(update, ["task", "uid", None, None, "no", None, None,
                                                     f"p_{p}", "no", None, "no", None, None])], "")
    return scripts


def pgbench_scripts(s):
    scripts = {}
    for name, (opening, statements, prelude) in scenario_sql(s).items():
        # pgbench's `\endpipeline` sends the one `Sync`, as the API does.
        body = [bind(*opening), *(bind(*st) for st in statements)]
        scripts[name] = LOOKUP + prelude + "\\startpipeline\n" + "\n".join(body) + "\n\\endpipeline\n"
    # GET /health: `SELECT 1` as a simple query on a pooled connection (src/store/health.rs).
    scripts["health"] = "SELECT 1;\n"
    return scripts


# Each scenario's scripts and their weights; mixed as bench/wrk/scenario.lua draws it.
PATCH = {f"patch_{p}": 1 for p in PRIORITIES}
SCENARIO_SCRIPTS = {
    **{name: {name: 1} for name in ("list", "list_project", "list_label", "get", "create",
                                   "changes", "create_idem", "health")},
    "patch": PATCH,
    "mixed": {"list": 16, "get": 16, "create": 4, **PATCH},
}


def without_rls_scripts(s):
    """The reads as before row-level security: the account check pipelined with the
    statements, no transaction, run as a role that bypasses RLS (the superuser). Measures
    what the second wall costs the database (docs/SECURITY.md)."""
    exists = bind(s.find("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"), ["uid"])
    scripts = {}
    for name in ("list", "get"):
        _, statements, _ = scenario_sql(s)[name]
        body = [exists, *(bind(*st) for st in statements)]
        scripts[name] = LOOKUP + "\\startpipeline\n" + "\n".join(body) + "\n\\endpipeline\n"
    return scripts


def load_statements():
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "statements"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return Statements([json.loads(line) for line in out.splitlines() if line.strip()])


def log(message):
    print(message, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A keep-alive HTTP/1.1 client for seeding."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)


def seed_user(port, index, tasks_per_user, run_id):
    rng = random.Random(index)
    client = Client(port)
    email = f"bench-{run_id}-{index}@example.com"
    status, _ = client.call("POST", "/auth/register", {"email": email, "password": PASSWORD})
    assert status == 201, f"register: {status}"
    status, body = client.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, f"login: {status}"
    token = body["access_token"]
    status, project = client.call("POST", "/projects", {"name": f"Bench project {index}"}, token)
    assert status == 201, f"project: {status}"
    # The `changes` scenario reads everything after this cursor: the user's tasks, seeded next
    # and created by the scenarios before it.
    status, feed = client.call("GET", "/changes", token=token)
    # A binary from before the feed (measured side by side) has none: no cursor.
    assert status in (200, 404) and not (feed or {}).get("has_more"), f"changes: {status}"
    cursor = feed["cursor"] if status == 200 else "-"
    first_task = None
    for t in range(tasks_per_user):
        task = {
            "title": f"Task {t} of user {index}: {rng.choice(['write', 'review', 'plan', 'fix'])}",
            "priority": rng.choice(["low", "medium", "high", "urgent"]),
            "status": rng.choice(["todo", "todo", "in_progress", "done"]),
        }
        if rng.random() < 0.6:
            task["due_at"] = f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
        if rng.random() < 0.5:
            task["description"] = "Details " * rng.randint(1, 20)
        # About half the tasks in the user's project, half carrying BENCH_LABEL.
        if rng.random() < 0.5:
            task["project_id"] = project["id"]
        task["labels"] = [label for label in (BENCH_LABEL, "home", "later") if rng.random() < 0.5]
        status, body = client.call("POST", "/tasks", task, token)
        assert status == 201, f"create: {status}"
        first_task = first_task or body["id"]
    return token, first_task, email, project["id"], cursor


def peak_rss_reset(pid):
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_wrk(port, scenario, connections, duration, data_file, delay_ms=0, cpu=None):
    env = dict(os.environ, BENCH_SCENARIO=scenario, BENCH_DATA=str(data_file), BENCH_DELAY_MS=str(delay_ms))
    threads = min(2, connections)
    if cpu:
        cpu.start()
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"],
        env=env, capture_output=True, text=True, check=True).stdout
    used = cpu.stop() if cpu else None
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    seconds = r["duration_us"] / 1e6
    ok = r["requests"] - r["non_2xx"]
    result = {
            "connections": connections,
            "requests": r["requests"],
            "rps": ok / seconds,
            "errors": r["non_2xx"] + r["socket_errors"] + r["timeouts"],
            "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000,
    }
    if used:
        # CPU per request of the server process (all its threads) and of PostgreSQL.
        result["api_cpu_us"] = used[0] * 1e6 / max(r["requests"], 1)
        result["pg_cpu_us"] = used[1] * 1e6 / max(r["requests"], 1)
    return result


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(parent pid, CPU seconds) of a process: utime + stime, and cutime + cstime, the time of
    its children that have ended and been waited for (a PostgreSQL backend that exits is
    counted in its postmaster's)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if proc_stat(entry)[0] == pid:
                    found.append(int(entry))
            except (OSError, ValueError):
                pass  # gone meanwhile
    return found


def find_postmaster(server_pid):
    """The private cluster's postmaster: taskapi starts it under a `sh` watchdog."""
    deadline = time.time() + 10
    while time.time() < deadline:
        for watchdog in children(server_pid):
            for pid in children(watchdog):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                    return pid
        time.sleep(0.1)
    raise RuntimeError("the private PostgreSQL's postmaster was not found")


def pg_cpu_seconds(postmaster):
    """CPU time of the whole cluster so far: the postmaster, its live children (backends and
    background processes) and, through the postmaster's cutime/cstime, those that ended."""
    total = proc_stat(postmaster)[1]
    for pid in children(postmaster):
        try:
            total += proc_stat(pid)[1]
        except OSError:
            pass
    return total


class CpuMeter:
    """CPU seconds of the API process and of PostgreSQL between `start` and `stop`."""

    def __init__(self, server_pid, postmaster):
        self.server_pid, self.postmaster = server_pid, postmaster

    def start(self):
        self.api, self.pg = proc_stat(self.server_pid)[1], pg_cpu_seconds(self.postmaster)
        self.backends = len(children(self.postmaster))

    def stop(self, backends_exit=False):
        # pgbench's backends exit when it does: wait until the postmaster has reaped them,
        # so that their time is in its cutime/cstime.
        deadline = time.time() + 3
        while backends_exit and len(children(self.postmaster)) > self.backends and time.time() < deadline:
            time.sleep(0.05)
        return proc_stat(self.server_pid)[1] - self.api, pg_cpu_seconds(self.postmaster) - self.pg


def run_pgbench(pg, scripts, weights, connections, duration, users, workdir, role="taskapi_app",
                defines=None, cpu=None):
    """One pgbench run of `scripts` by `weights` (name → weight): tps, transactions and (with
    a CpuMeter) PostgreSQL's CPU per transaction."""
    files = []
    for name, weight in weights.items():
        path = workdir / f"{name}-{role}.sql"
        path.write_text(scripts[name])
        files += ["-f", f"{path}@{weight}"]
    variables = {**CONSTANTS, "users": str(users), "refresh": str(REFRESH), "fresh": "1", **(defines or {})}
    # Health is one simple query, as the API sends it; the rest are pipelines of prepared
    # statements, as the API's are (pgbench pipelines only with the extended protocol).
    mode = "simple" if "health" in weights else "prepared"
    command = [pg["pgbench"], "-n", "-M", mode, "-c", str(connections), "-j", str(min(2, connections)),
               "-T", str(duration), "-h", pg["socket"], "-p", "5432", "-U", role,
               *(arg for k, v in variables.items() for arg in ("-D", f"{k}={v}")), *files, "taskapi"]
    if cpu:
        cpu.start()
    out = subprocess.run(command, capture_output=True, text=True)
    used = cpu.stop(backends_exit=True) if cpu else None
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
    result = {"tps": float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1)), "transactions": transactions}
    if used:
        result["pg_cpu_us"] = used[1] * 1e6 / max(transactions, 1)
    return result


# What each side sent, from pg_stat_statements (loaded in the private cluster for the run).
STATEMENT_STATS = ("SELECT coalesce(json_agg(json_build_object('query', s.query, 'calls', s.calls, "
                   "'rows', s.rows)), '[]') FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid "
                   "WHERE r.rolname = 'taskapi_app' AND s.dbid = (SELECT oid FROM pg_database "
                   "WHERE datname = 'taskapi')")
def statement_stats(pg, reset=False):
    if reset:
        psql(pg, "SELECT pg_stat_statements_reset()")
        return None
    out = subprocess.run([pg["psql"], "-qAt", "-h", pg["socket"], "-U", "postgres", "-d", "taskapi",
                          "-c", STATEMENT_STATS], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def track_statements(pg, on):
    """pg_stat_statements costs a read 2-4 % of its throughput: it tracks only during the
    check runs. A pooled backend takes the new setting after its next message."""
    psql(pg, f"ALTER SYSTEM SET pg_stat_statements.track = '{'top' if on else 'none'}'")
    psql(pg, "SELECT pg_reload_conf()")
    time.sleep(0.2)


CHECK_SECONDS = 2


def check_statements(pg, port, scripts, scenario, connections, data_file, users, workdir):
    """A short run of the API and one of the ceiling with pg_stat_statements tracking: the
    statements each issued (their text with constants and parameters left out, calls per
    request or transaction, rows per call), and the differences."""
    track_statements(pg, True)
    try:
        statement_stats(pg, reset=True)
        api_run = run_wrk(port, scenario, connections, CHECK_SECONDS, data_file)
        api = per_request(statement_stats(pg), api_run["requests"])
        statement_stats(pg, reset=True)
        ceiling_run = run_pgbench(pg, scripts, SCENARIO_SCRIPTS[scenario], connections, CHECK_SECONDS,
                                  users, workdir)
        ceiling = per_request(statement_stats(pg), ceiling_run["transactions"])
    finally:
        track_statements(pg, False)
    differences = compare_statements(api, ceiling)
    return {"same": not differences, "differences": differences, "api": api, "ceiling": ceiling}


# What pg_stat_statements turns into placeholders: a statement's entry made when it was
# parsed has its constants replaced (`$4`), one made when a statement prepared before the
# last reset runs (the API's) keeps them. Both are reduced to `$`.
CONSTANT = re.compile(r"\$\d+|'(?:[^']|'')*'|\b\d+\b|\b(?:true|false|null)\b", re.IGNORECASE)


def statement_shape(query):
    return re.sub(r"\s+", " ", CONSTANT.sub("$", query)).strip().rstrip(";")


def per_request(stats, requests):
    """Statement (its shape: constants and parameters alike `$`) → calls per request and rows
    per call; statements run less than once per 50 requests (background jobs, opening
    connections, the ceiling's user lookup) are left out."""
    shapes = {}
    for s in stats:
        text = statement_shape(s["query"])
        if "bench_users" in text or s["calls"] < 0.02 * requests:
            continue
        calls, rows = shapes.get(text, (0, 0))
        shapes[text] = (calls + s["calls"], rows + s["rows"])
    return {t: {"calls": c / requests, "rows": r / max(c, 1)} for t, (c, r) in shapes.items()}


def compare_statements(api, ceiling):
    """Differences between what a request sent and what a ceiling transaction did."""
    differences = []
    for text in sorted(set(api) | set(ceiling)):
        a, c = api.get(text), ceiling.get(text)
        if not a or not c:
            side = "the API" if a else "the ceiling"
            differences.append(f"only {side} runs: {text[:120]}")
            continue
        if abs(a["calls"] - c["calls"]) > 0.02 + 0.05 * a["calls"]:
            differences.append(f"{a['calls']:.2f} calls per request vs {c['calls']:.2f} per transaction: {text[:80]}")
        if abs(a["rows"] - c["rows"]) > max(0.5, 0.1 * a["rows"]):
            differences.append(f"{a['rows']:.1f} rows per call vs {c['rows']:.1f}: {text[:80]}")
    return differences


def login_storm(port, pid, duration, data_file):
    """list at a modest paced rate, quiet and then during a 64-connection login storm."""
    quiet = run_wrk(port, "list", 8, duration, data_file, delay_ms=16)
    peak_rss_reset(pid)
    env = dict(os.environ, BENCH_SCENARIO="login", BENCH_DATA=str(data_file), BENCH_DELAY_MS="0")
    logins = subprocess.Popen(
        ["wrk", "-t1", "-c64", f"-d{duration + 2}s", "--timeout", "30s", "-s", str(WRK_SCRIPT),
         f"http://127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL)
    time.sleep(1)
    stormy = run_wrk(port, "list", 8, duration, data_file, delay_ms=16)
    logins.wait()
    result = {"quiet": quiet, "storm": stormy, "p99_factor": stormy["p99_ms"] / max(quiet["p99_ms"], 1e-9),
              "peak_rss_mib": peak_rss_kib(pid) / 1024}
    log(f"login storm: list p99 {stormy['p99_ms']:.2f} ms (quiet {quiet['p99_ms']:.2f} ms)")
    return result


def psql(pg, sql):
    subprocess.run([pg["psql"], "-q", "-v", "ON_ERROR_STOP=1", "-h", pg["socket"], "-U", "postgres",
                    "-d", "taskapi", "-c", sql], check=True, capture_output=True)


# Bulk fills skip the per-row count trigger (one UPDATE of the owner per task would make a
# million-row fill crawl) and recount once afterwards. Superuser only; the owners exist.
BULK = "SET session_replication_role = replica; "
RECOUNT = ("UPDATE users u SET task_count = c.n FROM (SELECT owner_id, count(*) AS n FROM tasks "
           "GROUP BY owner_id) c WHERE c.owner_id = u.id AND u.task_count <> c.n; "
           "UPDATE projects p SET task_count = c.n FROM (SELECT project_id, count(*) AS n FROM tasks "
           "WHERE project_id IS NOT NULL GROUP BY project_id) c WHERE c.project_id = p.id "
           "AND p.task_count <> c.n; "
           "INSERT INTO label_counts (owner_id, label, task_count) SELECT owner_id, l, count(*) "
           "FROM tasks, unnest(labels) l GROUP BY owner_id, l "
           "ON CONFLICT (owner_id, label) DO UPDATE SET task_count = excluded.task_count; "
           "ANALYZE tasks;")


def run_scale(port, pg, args, workdir, data_file):
    """How the cost grows: list for accounts of 10, 1,000 and 10,000 tasks; get with 100k and
    1M tasks in the table. Big accounts are filled with SQL (the API would take too long)."""
    rows = []
    client = Client(port)
    for size in (10, 1_000, 10_000):
        email = f"scale-{size}-{int(time.time())}@example.com"
        assert client.call("POST", "/auth/register", {"email": email, "password": PASSWORD})[0] == 201
        _, body = client.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
        token = body["access_token"]
        status, project = client.call("POST", "/projects", {"name": "Scale"}, token)
        assert status == 201, f"project: {status}"
        # Half the tasks in the project and a third carrying the label.
        psql(pg, BULK + f"INSERT INTO tasks (owner_id, title, priority, due_at, project_id, labels) "
                 f"SELECT u.id, 'Scale task ' || g, (ARRAY['low','medium','high','urgent'])[1 + g % 4]::task_priority, "
                 f"now() + g * interval '1 hour', CASE WHEN g % 2 = 0 THEN '{project['id']}'::uuid END, "
                 f"CASE WHEN g % 3 = 0 THEN ARRAY['{BENCH_LABEL}'] ELSE '{{}}' END "
                 f"FROM users u, generate_series(1, {size}) g WHERE u.email = '{email}'; "
                 + RECOUNT)
        _, page = client.call("GET", "/tasks?limit=1", token=token)
        one = workdir / f"scale-{size}.tsv"
        one.write_text(f"{token}\t{page['items'][0]['id']}\t{email}\t{PASSWORD}\t{project['id']}\t-\n")
        for scenario in ("list", "list_project", "list_label"):
            run = run_wrk(port, scenario, 16, args.duration, one)
            rows.append({"what": f"{scenario}, {size} tasks in the account", **run})
            log(f"growth  {scenario} @ {size:>6} tasks/user: {run['rps']:.0f} req/s, p50 {run['p50_ms']:.2f} ms")
    for total in (100_000, 1_000_000):
        psql(pg, BULK + "CREATE TEMP TABLE f AS SELECT id FROM users LIMIT 1; "
                 f"INSERT INTO tasks (owner_id, title) SELECT (SELECT id FROM f), 'Filler ' || g "
                 f"FROM generate_series(1, greatest(0, {total} - (SELECT count(*) FROM tasks))) g; " + RECOUNT)
        run = run_wrk(port, "get", 16, args.duration, data_file)
        rows.append({"what": f"get, {total:,} tasks in the table", **run})
        log(f"growth  get @ {total:>9} rows: {run['rps']:.0f} req/s, p50 {run['p50_ms']:.2f} ms")
    return rows


def login_ceiling():
    """Password verifications per second through taskapi's own hashing path (see
    examples/argon2_time.rs): a login's ceiling, since each login verifies one hash."""
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "argon2_time"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def lookup_cost(pg, scripts, args, workdir, literal):
    """What picking the user costs the ceiling: pgbench rounds of get and list with the lookup
    in every transaction, every ~REFRESH-th (the ceiling's way) and never (one user's ids as
    literal variables), alternating."""
    modes = {"every transaction": {"refresh": "1"},
             f"about one in {REFRESH} (the ceiling)": {},
             "never (literal ids, one user)": {"fresh": "0", "refresh": "1000000000", **literal}}
    cost = {}
    for scenario in ("get", "list"):
        tps = {mode: [] for mode in modes}
        for _ in range(args.lookup_rounds):
            for mode, defines in modes.items():
                tps[mode].append(run_pgbench(pg, scripts, SCENARIO_SCRIPTS[scenario], args.pool_size,
                                             args.duration, args.users, workdir, defines=defines)["tps"])
        medians = {mode: sorted(v)[len(v) // 2] for mode, v in tps.items()}
        cost[scenario] = {"median_tps": medians, "tps": tps}
        log(f"lookup cost {scenario}: " + ", ".join(f"{m}: {t:.0f} tps" for m, t in medians.items()))
    return cost


def svg_chart(results, path):
    width, bar, gap, top = 760, 28, 50, 40
    rows = [r for r in results if r.get("ceiling_rps")]
    peak = max(max(r["rps"], r["ceiling_rps"]) for r in rows) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + len(rows) * (2 * bar + gap) + 40}" '
             'font-family="sans-serif" font-size="13">',
             f'<text x="10" y="22" font-size="15" font-weight="bold">taskapi vs PostgreSQL ceiling (requests/s, best concurrency)</text>']
    y = top
    scale = (width - 260) / peak
    for r in rows:
        parts.append(f'<text x="10" y="{y + bar}">{r["scenario"]}</text>')
        parts.append(f'<rect x="90" y="{y}" width="{r["rps"] * scale:.1f}" height="{bar - 4}" fill="#2b6cb0"/>')
        parts.append(f'<text x="{95 + r["rps"] * scale:.1f}" y="{y + bar - 10}">{r["rps"]:.0f} API ({r["ratio"]:.2f}×)</text>')
        parts.append(f'<rect x="90" y="{y + bar}" width="{r["ceiling_rps"] * scale:.1f}" height="{bar - 4}" fill="#a0aec0"/>')
        parts.append(f'<text x="{95 + r["ceiling_rps"] * scale:.1f}" y="{y + 2 * bar - 10}">{r["ceiling_rps"]:.0f} ceiling</text>')
        if "api_cpu_us" in r:
            ceiling = f'; ceiling: PostgreSQL {r["ceiling_pg_cpu_us"]:.0f} µs/tx' if "ceiling_pg_cpu_us" in r else ""
            parts.append(f'<text x="90" y="{y + 2 * bar + 12}" font-size="11" fill="#4a5568">CPU per request: '
                         f'API {r["api_cpu_us"]:.0f} µs, PostgreSQL {r["pg_cpu_us"]:.0f} µs{ceiling}</text>')
        y += 2 * bar + gap
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def start_server(binary, env, port):
    server = subprocess.Popen([binary], env=env)
    deadline = time.time() + 90
    while True:
        try:
            if Client(port).call("GET", "/health")[0] == 200:
                return server
        except OSError:
            pass
        if time.time() > deadline or server.poll() is not None:
            stop_server(server)
            raise RuntimeError("the server did not become healthy")
        time.sleep(0.2)


def stop_server(server):
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def print_report(results, rls_cost, storm, scale, login, lookup):
    print()
    print(f"{'scenario':12} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>7} "
          f"{'ceiling':>8} {'ratio':>5} {'µs/req API':>10} {'µs/req PG':>9} {'µs/tx PG-ceil':>13} {'SQL':>4}")
    for r in results:
        ceiling_cpu = f"{r['ceiling_pg_cpu_us']:>13.0f}" if "ceiling_pg_cpu_us" in r else f"{'-':>13}"
        same = r.get("statements", {}).get("same")
        sql = "-" if same is None else ("same" if same else "DIFF")
        print(f"{r['scenario']:12} {r['connections']:>5} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
              f"{r['errors']:>6} {r['peak_rss_mib']:>7.1f} {r['ceiling_rps']:>8.0f} {r['ratio']:>5.2f} "
              f"{r['api_cpu_us']:>10.0f} {r['pg_cpu_us']:>9.0f} {ceiling_cpu} {sql:>4}")
    print("CPU: µs per request of the server process and of the PostgreSQL cluster during the best run; "
          "µs per transaction of the cluster under pgbench.")
    checked = [r for r in results if r.get("statements", {}).get("same") is not None]
    if checked:
        print(f"SQL: the ceiling's statements (pg_stat_statements: text, calls per transaction, rows per call) "
              f"against the API's per request, {sum(r['statements']['same'] for r in checked)} of {len(checked)} the same.")
    for r in checked:
        for difference in r["statements"]["differences"]:
            print(f"  {r['scenario']}: {difference}")
    for r in results:
        if "half_load" in r:
            h = r["half_load"]
            print(f"{r['scenario']} at ~half load: {h['rps']:.0f} req/s, p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms")
    for scenario, cost in rls_cost.items():
        print(f"row-level security on {scenario}: {100 * (1 - cost['median_ratio']):.1f}% fewer transactions/s "
              f"(median of {len(cost['ratios'])} alternating pgbench rounds)")
    for scenario, cost in lookup.items():
        tps = cost["median_tps"]
        literal = list(tps.values())[-1]
        print(f"user lookup on the {scenario} ceiling: " + ", ".join(
            f"{mode} {t:.0f} tps ({100 * (t / literal - 1):+.1f}%)" for mode, t in tps.items()))
    if storm:
        print(f"login storm (64 connections): list p99 {storm['storm']['p99_ms']:.2f} ms vs "
              f"{storm['quiet']['p99_ms']:.2f} ms quiet ({storm['p99_factor']:.1f}×), "
              f"peak RSS {storm['peak_rss_mib']:.1f} MiB")
    for row in scale:
        print(f"growth: {row['what']:<34} {row['rps']:>8.0f} req/s  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms")
    if login:
        print(f"Argon2id: {login['verifies_per_s']:.0f} verifications/s on {login['threads']} hashing threads "
              f"({login['ms_one_alone']:.1f} ms for one alone); RSS includes {login['threads']} × 19 MiB of working memory")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks-per-user", type=int, default=50)
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--connections", default="16,64", help="concurrencies to try")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--pool-size", type=int, default=16,
                        help="the server's DATABASE_POOL_SIZE; pgbench uses min(connections, this)")
    parser.add_argument("--rls-rounds", type=int, default=3,
                        help="alternating pgbench rounds measuring the cost of row-level security (0: skip)")
    parser.add_argument("--lookup-rounds", type=int, default=0,
                        help="alternating pgbench rounds measuring what picking the user costs the ceiling (0: skip)")
    parser.add_argument("--no-statement-check", action="store_true",
                        help="skip comparing each ceiling's SQL with the API's (pg_stat_statements, short runs)")
    parser.add_argument("--no-scale", action="store_true",
                        help="skip the growth runs (list at 10/1,000/10,000 tasks per user; get at 100k/1M rows)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    parser.add_argument("--binary", default=str(target / "release" / "taskapi"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    scenarios = args.scenarios.split(",")
    check = not args.no_statement_check

    # The binary's own statement texts, before anything starts: a recipe that no longer
    # matches them stops the bench here.
    statements = load_statements()
    scripts, without_rls = pgbench_scripts(statements), without_rls_scripts(statements)

    workdir = Path(tempfile.mkdtemp(prefix="taskapi-bench-"))
    os.chmod(workdir, 0o755)
    data_dir = workdir / "data"
    port = free_port()
    env = dict(os.environ, TASKAPI_DATA_DIR=str(data_dir), HOST="127.0.0.1", PORT=str(port),
               RUST_LOG="warn", REGISTRATIONS_PER_ADDRESS="100000000",
               LOGIN_FAILURES_PER_ADDRESS="100000000", DATABASE_POOL_SIZE=str(args.pool_size))
    env.pop("DATABASE_URL", None)
    pg = {"pgbench": shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench",
          "psql": shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql",
          "socket": str(data_dir / "run")}
    server = start_server(args.binary, env, port)
    try:
        if check:
            # pg_stat_statements must be loaded at server start: once the cluster exists,
            # restart taskapi (and so its PostgreSQL) with it.
            psql(pg, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            stop_server(server)
            server = start_server(args.binary, env, port)
            psql(pg, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            track_statements(pg, False)

        log(f"seeding {args.users} users × {args.tasks_per_user} tasks through the API …")
        started = time.time()
        run_id = f"{int(time.time())}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            seeded = list(pool.map(lambda i: seed_user(port, i, args.tasks_per_user, run_id), range(args.users)))
        log(f"seeded in {time.time() - started:.1f}s")
        data_file = workdir / "users.tsv"
        data_file.write_text("".join(f"{t}\t{task}\t{email}\t{PASSWORD}\t{project}\t{cursor}\n"
                                     for t, task, email, project, cursor in seeded))

        rows = ",".join(f"({i + 1}, '{task}', '{project}')" for i, (_, task, _, project, _) in enumerate(seeded))
        emails = ",".join(f"({i + 1}, '{email}')" for i, (_, _, email, _, _) in enumerate(seeded))
        setup = (f"CREATE TABLE bench_users (n int PRIMARY KEY, id uuid, task uuid, project uuid);"
                 f"CREATE TEMP TABLE t (n int, task uuid, project uuid); INSERT INTO t VALUES {rows};"
                 f"CREATE TEMP TABLE e (n int, email text); INSERT INTO e VALUES {emails};"
                 f"INSERT INTO bench_users SELECT t.n, u.id, t.task, t.project FROM t JOIN e USING (n) JOIN users u ON u.email = e.email;"
                 f"GRANT SELECT ON bench_users TO taskapi_app; ANALYZE;")
        subprocess.run([pg["psql"], "-q", "-h", pg["socket"], "-U", "postgres", "-d", "taskapi", "-c", setup],
                       check=True, capture_output=True)
        first = subprocess.run([pg["psql"], "-qAt", "-F", " ", "-h", pg["socket"], "-U", "postgres", "-d", "taskapi",
                                "-c", "SELECT id, task, project FROM bench_users WHERE n = 1"],
                               check=True, capture_output=True, text=True).stdout.split()
        literal = dict(zip(("uid", "task", "project"), first))

        cpu = CpuMeter(server.pid, find_postmaster(server.pid))
        cores = os.cpu_count() or 1
        login = login_ceiling() if "login" in scenarios else None
        results = []
        for scenario in scenarios:
            runs = []
            for c in connections:
                peak_rss_reset(server.pid)
                run = run_wrk(port, scenario, c, args.duration, data_file, cpu=cpu)
                run["peak_rss_mib"] = peak_rss_kib(server.pid) / 1024
                runs.append(run)
                log(f"{scenario:7} c={c:<3} {run['rps']:9.0f} req/s  p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  "
                    f"errors {run['errors']}  CPU/req: API {run['api_cpu_us']:.0f} µs, PG {run['pg_cpu_us']:.0f} µs")
            best = max(runs, key=lambda r: r["rps"])
            result = {"scenario": scenario, **best, "runs": runs}
            if scenario == "login":
                result["ceiling_rps"] = login["verifies_per_s"]
                result["ceiling"] = (f"{login['threads']} hashing threads of taskapi's PasswordHasher, "
                                     f"{login['verifies_per_s']:.0f} verifications/s")
            else:
                # The API never holds more database connections than its pool: neither may pgbench.
                db_connections = min(best["connections"], args.pool_size)
                ceiling = run_pgbench(pg, scripts, SCENARIO_SCRIPTS[scenario], db_connections, args.duration,
                                      args.users, workdir, cpu=cpu)
                result["ceiling_rps"] = ceiling["tps"]
                result["ceiling_pg_cpu_us"] = ceiling["pg_cpu_us"]
                result["ceiling"] = f"pgbench, the API's statements, {db_connections} connections"
                log(f"{scenario:7} ceiling {ceiling['tps']:.0f} tps, PG {ceiling['pg_cpu_us']:.0f} µs/tx")
                if check:
                    result["statements"] = check_statements(pg, port, scripts, scenario, db_connections,
                                                            data_file, args.users, workdir)
                    differences = result["statements"]["differences"]
                    log(f"{scenario:7} SQL " + ("the same as the API's" if not differences
                                                else "DIFFERS: " + "; ".join(differences)))
            result["ratio"] = result["rps"] / result["ceiling_rps"]
            if scenario in ("list", "get"):
                # Latency at about half the best throughput: each connection waits between
                # requests; the wait is corrected once or twice from the rate achieved.
                target, c = best["rps"] / 2, 32
                delay = max(1, round(c / target * 1000))
                for _ in range(3):
                    paced = run_wrk(port, scenario, c, args.duration, data_file, delay_ms=delay)
                    if abs(paced["rps"] - target) <= 0.15 * target:
                        break
                    latency_ms = max(0.0, c / paced["rps"] * 1000 - delay)
                    delay = max(1, round(c / target * 1000 - latency_ms))
                result["half_load"] = paced
                log(f"{scenario:7} at ~half load ({paced['rps']:.0f} req/s): p99 {paced['p99_ms']:.2f} ms")
            results.append(result)

        rls_cost = {}
        for scenario in [s for s in ("list", "get") if s in scenarios and args.rls_rounds > 0]:
            ratios = []
            for _ in range(args.rls_rounds):
                with_rls = run_pgbench(pg, scripts, SCENARIO_SCRIPTS[scenario], args.pool_size, args.duration,
                                       args.users, workdir)["tps"]
                without = run_pgbench(pg, without_rls, {scenario: 1}, args.pool_size, args.duration, args.users,
                                      workdir, role="postgres")["tps"]
                ratios.append(with_rls / without)
                log(f"RLS cost {scenario}: {with_rls:.0f} tps with, {without:.0f} without")
            ratios.sort()
            rls_cost[scenario] = {"median_ratio": ratios[len(ratios) // 2], "ratios": ratios}

        lookup = lookup_cost(pg, scripts, args, workdir, literal) if args.lookup_rounds > 0 else {}

        storm = None
        if "login" in scenarios and "list" in scenarios:
            storm = login_storm(port, server.pid, args.duration, data_file)

        scale = [] if args.no_scale else run_scale(port, pg, args, workdir, data_file)

        print_report(results, rls_cost, storm, scale, login, lookup)

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit, "cores": cores,
                  "users": args.users, "tasks_per_user": args.tasks_per_user, "duration_s": args.duration,
                  "login_ceiling": login, "pool_size": args.pool_size, "lookup_refresh": REFRESH,
                  "statement_check": check, "results": results, "rls_cost": rls_cost, "lookup_cost": lookup,
                  "growth": scale, "login_storm": storm}
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        (out / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
        svg_chart(results, out / "latest.svg")
        log(f"results: {out / (stamp + '.json')}, chart: {out / 'latest.svg'}")
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
