#!/usr/bin/env python3
"""taskapi benchmark: the API under wrk, side by side with PostgreSQL's own ceiling.

Starts a release build of taskapi on a throwaway private PostgreSQL, seeds it through the
API, drives each scenario with wrk at several concurrencies, runs the same SQL the scenario's
requests issue directly through pgbench (pipelined, like the API) with the same number of
connections, and prints requests/s, latency, errors, the server's peak RSS and the ratio to
the ceiling. Results go to bench/results/ as JSON and an SVG chart. Standard library only.
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
# The label the `list_label` scenario filters by; about half of the seeded tasks carry it.
BENCH_LABEL = "work"

# The SQL each scenario's request issues, as the store sends it (src/store/*.rs), for pgbench.
# :n picks a random seeded user; its id and one of its tasks come from bench_users. The API
# pipelines BEGIN, the session check, the statements and COMMIT in one round trip; pgbench
# does the same with \startpipeline.
COLUMNS = ("id, title, description, status::text, priority::text, due_at, completed_at, "
           "version, created_at, updated_at, project_id, labels")
OWNER = "(SELECT id FROM bench_users WHERE n = :n)"
TASK = "(SELECT task FROM bench_users WHERE n = :n)"
PROJECT = "(SELECT project FROM bench_users WHERE n = :n)"
SESSION = (f"SELECT set_config('taskapi.user_id', u.id::text, true) FROM users u "
           f"WHERE u.id = {OWNER} AND u.token_version = 1 AND NOT EXISTS "
           f"(SELECT 1 FROM revoked_tokens r WHERE r.jti = '00000000-0000-0000-0000-000000000000');")


# Unfiltered, by one project and by one label, in creation order, the list has a statement of
# its own (src/store/tasks.rs: LIST_OWNER_NEWEST, LIST_PROJECT_NEWEST, LIST_LABEL_NEWEST).
FILTERS = f"owner_id = {OWNER}"
PROJECT_FILTERS = f"owner_id = {OWNER} AND project_id = {PROJECT}"
LABEL_FILTERS = f"owner_id = {OWNER} AND labels @> ARRAY['{BENCH_LABEL}'::text]"
# A page of 20 fetches 21 rows: the 21st tells whether a next page (`next_cursor`) follows.
LIST_ORDER = "ORDER BY created_at DESC, id DESC LIMIT 21 OFFSET 0"


def pipelined(*statements):
    body = "\n".join(["BEGIN;", SESSION, *statements, "COMMIT;"])
    return f"\\set n random(1, :users)\n\\startpipeline\n{body}\n\\endpipeline\n"


# A writing transaction's session statement also takes the account's change counter
# (src/store/users.rs OPEN_WRITING_SESSION; migration V5). A binary from before it reads.
WRITING_SESSION = (f"UPDATE users u SET change_seq = u.change_seq + 1 WHERE u.id = {OWNER} "
                   f"AND u.token_version = 1 AND NOT EXISTS "
                   f"(SELECT 1 FROM revoked_tokens r WHERE r.jti = '00000000-0000-0000-0000-000000000000') "
                   f"RETURNING set_config('taskapi.user_id', u.id::text, true), "
                   f"set_config('taskapi.change_seq', u.id::text || '/' || u.change_seq, true);")
# The change feed after the cursor taken when the user's project was created (its first
# change: counter value 1), as src/store/changes.rs writes it; limit + 1 rows.
FEED = ("SELECT c.kind, c.deleted, c.id, c.seq, t.id, t.title, t.description, t.status::text, "
        "t.priority::text, t.due_at, t.completed_at, t.version, t.created_at, t.updated_at, "
        "t.project_id, t.labels, p.id, p.name, p.version, p.created_at, p.updated_at "
        "FROM changes c LEFT JOIN tasks t ON c.kind = 'task' AND NOT c.deleted "
        "AND t.owner_id = c.owner_id AND t.id = c.id AND t.change_seq = c.seq "
        "LEFT JOIN projects p ON c.kind = 'project' AND NOT c.deleted "
        "AND p.owner_id = c.owner_id AND p.id = c.id AND p.change_seq = c.seq "
        f"WHERE c.owner_id = {OWNER} AND (c.seq, c.kind, c.id) > (1, 'project', {PROJECT}) "
        "AND CASE WHEN c.deleted THEN NOT false ELSE t.id IS NOT NULL OR p.id IS NOT NULL END "
        "ORDER BY c.seq, c.kind, c.id LIMIT 101;")
# A keyed create (src/store/idempotency.rs): the claim, the conditional create, the look-up
# of an earlier response; a fresh random key each time.
CLAIM_ID = "'00000000-0000-4000-8000-000000000001'::uuid"
KEY = "'bench-' || :k"
CREATE_IDEM = [
    "INSERT INTO idempotency_keys AS k (owner_id, route, key, request_digest, claim) "
    f"VALUES ({OWNER}, 'tasks', {KEY}, decode(repeat('ab', 32), 'hex'), {CLAIM_ID}) "
    "ON CONFLICT (owner_id, route, key) DO UPDATE SET request_digest = excluded.request_digest, "
    "claim = excluded.claim, response = NULL, claimed_at = now() "
    "WHERE k.claimed_at < now() - interval '24 hours';",
    "WITH created AS (INSERT INTO tasks (owner_id, title, description, status, priority, due_at, "
    "completed_at, project_id, labels) "
    f"SELECT {OWNER}, 'Benchmark task', 'created under load', 'todo'::text::task_status, "
    "'high'::text::task_priority, '2027-01-15T09:00:00Z'::timestamptz, NULL, NULL::uuid, '{}'::text[] "
    f"WHERE EXISTS (SELECT 1 FROM idempotency_keys WHERE owner_id = {OWNER} AND route = 'tasks' "
    f"AND key = {KEY} AND claim = {CLAIM_ID}) RETURNING *), "
    "remembered AS (UPDATE idempotency_keys k SET response = to_jsonb(created) FROM created "
    f"WHERE k.owner_id = {OWNER} AND k.route = 'tasks' AND k.key = {KEY} AND k.claim = {CLAIM_ID}) "
    f"SELECT {COLUMNS} FROM created;",
    f"SELECT k.request_digest, {COLUMNS} FROM idempotency_keys k, "
    "jsonb_populate_record(NULL::tasks, k.response) r "
    f"WHERE k.owner_id = {OWNER} AND k.route = 'tasks' AND k.key = {KEY} AND k.claim <> {CLAIM_ID} "
    "AND k.response IS NOT NULL AND k.claimed_at >= now() - interval '24 hours';",
]


def writing(counter, *statements):
    if not counter:
        return pipelined(*statements)
    body = "\n".join(["BEGIN;", WRITING_SESSION, *statements, "COMMIT;"])
    return f"\\set n random(1, :users)\n\\startpipeline\n{body}\n\\endpipeline\n"


def pgbench_scripts(counter):
    """The pgbench script of every scenario; `counter`: the schema has the change counter."""
    return {
        # Unfiltered, and filtered by one project or one label alone, `total` is a trigger-kept
        # count (src/store/tasks.rs), not a count over the tasks.
        "list": pipelined(
            f"SELECT {COLUMNS} FROM tasks WHERE {FILTERS} {LIST_ORDER};",
            f"SELECT task_count::int8 FROM users WHERE id = {OWNER};"),
        "list_project": pipelined(
            f"SELECT {COLUMNS} FROM tasks WHERE {PROJECT_FILTERS} {LIST_ORDER};",
            f"SELECT coalesce((SELECT task_count::int8 FROM projects WHERE owner_id = {OWNER} "
            f"AND id = {PROJECT}), 0);"),
        "list_label": pipelined(
            f"SELECT {COLUMNS} FROM tasks WHERE {LABEL_FILTERS} {LIST_ORDER};",
            f"SELECT coalesce((SELECT task_count::int8 FROM label_counts WHERE owner_id = {OWNER} "
            f"AND label = '{BENCH_LABEL}'), 0);"),
        "get": pipelined(f"SELECT {COLUMNS} FROM tasks WHERE id = {TASK} AND owner_id = {OWNER};"),
        "create": writing(
            counter,
            "INSERT INTO tasks (owner_id, title, description, status, priority, due_at, completed_at, "
            "project_id, labels) "
            f"VALUES ({OWNER}, 'Benchmark task', 'created under load', 'todo', 'high', "
            "'2027-01-15T09:00:00Z', NULL, NULL, '{}') RETURNING " + COLUMNS + ";"),
        "patch": writing(
            counter,
            "UPDATE tasks SET title = COALESCE(NULL::text, title), "
            "description = CASE WHEN false THEN NULL::text ELSE description END, "
            "status = COALESCE(NULL::text::task_status, status), "
            "priority = COALESCE('low'::text::task_priority, priority), "
            "due_at = CASE WHEN false THEN NULL::timestamptz ELSE due_at END, "
            "project_id = CASE WHEN false THEN NULL::uuid ELSE project_id END, "
            "labels = COALESCE(NULL::text[], labels), "
            "completed_at = CASE WHEN COALESCE(NULL::text::task_status, status) = 'done' "
            "THEN COALESCE(completed_at, now()) END, version = version + 1, updated_at = now() "
            # No If-Match in the scenario, so no existence check follows the UPDATE (src/store/tasks.rs).
            f"WHERE id = {TASK} AND owner_id = {OWNER} AND (NULL::int4[] IS NULL) RETURNING " + COLUMNS + ";"),
        "changes": pipelined(FEED),
        "create_idem": "\\set k random(1, 2000000000)\n" + writing(counter, *CREATE_IDEM),
        "health": "SELECT 1;\n",
    }


PGBENCH_SCRIPTS = pgbench_scripts(True)
MIXED_WEIGHTS = {"list": 40, "get": 40, "create": 10, "patch": 10}

# The same reads as before row-level security: the account check pipelined with the
# statements, no transaction, run as a role that bypasses RLS (the superuser). Measures
# what the second wall costs the database (docs/SECURITY.md).
EXISTS_CHECK = f"SELECT EXISTS (SELECT 1 FROM users WHERE id = {OWNER});"


def plain(*statements):
    body = "\n".join([EXISTS_CHECK, *statements])
    return f"\\set n random(1, :users)\n\\startpipeline\n{body}\n\\endpipeline\n"


WITHOUT_RLS = {
    "list": plain(
        f"SELECT {COLUMNS} FROM tasks WHERE {FILTERS} {LIST_ORDER};",
        f"SELECT task_count::int8 FROM users WHERE id = {OWNER};"),
    "get": plain(f"SELECT {COLUMNS} FROM tasks WHERE id = {TASK} AND owner_id = {OWNER};"),
}


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


def run_wrk(port, scenario, connections, duration, data_file, delay_ms=0):
    env = dict(os.environ, BENCH_SCENARIO=scenario, BENCH_DATA=str(data_file), BENCH_DELAY_MS=str(delay_ms))
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}"],
        env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"BENCH_JSON (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    seconds = r["duration_us"] / 1e6
    ok = r["requests"] - r["non_2xx"]
    return {
            "connections": connections,
            "requests": r["requests"],
            "rps": ok / seconds,
            "errors": r["non_2xx"] + r["socket_errors"] + r["timeouts"],
            "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000,
    }


def run_pgbench(pg, scenario, connections, duration, users, workdir, sources=None, role="taskapi_app"):
    files = []
    scripts = MIXED_WEIGHTS if scenario == "mixed" else {scenario: 1}
    sources = sources or PGBENCH_SCRIPTS
    for name, weight in scripts.items():
        path = workdir / f"{name}-{role}.sql"
        path.write_text(sources[name])
        files += ["-f", f"{path}@{weight}"]
    out = subprocess.run(
        [pg["pgbench"], "-n", "-M", "prepared", "-c", str(connections), "-j", str(min(2, connections)),
         "-T", str(duration), "-D", f"users={users}", "-h", pg["socket"], "-p", "5432",
         "-U", role, *files, "taskapi"],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    match = re.search(r"tps = ([0-9.]+)", out.stdout)
    return float(match.group(1))


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


def argon2_ms():
    out = subprocess.run(["cargo", "run", "--quiet", "--release", "--example", "argon2_time"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def svg_chart(results, path):
    width, bar, gap, height, top = 760, 28, 34, 320, 40
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
        y += 2 * bar + gap
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


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
    parser.add_argument("--no-scale", action="store_true",
                        help="skip the growth runs (list at 10/1,000/10,000 tasks per user; get at 100k/1M rows)")
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "taskapi"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    scenarios = args.scenarios.split(",")

    workdir = Path(tempfile.mkdtemp(prefix="taskapi-bench-"))
    os.chmod(workdir, 0o755)
    data_dir = workdir / "data"
    port = free_port()
    env = dict(os.environ, TASKAPI_DATA_DIR=str(data_dir), HOST="127.0.0.1", PORT=str(port),
               RUST_LOG="warn", REGISTRATIONS_PER_ADDRESS="100000000",
               LOGIN_FAILURES_PER_ADDRESS="100000000", DATABASE_POOL_SIZE=str(args.pool_size))
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen([args.binary], env=env)
    try:
        deadline = time.time() + 90
        while True:
            try:
                if Client(port).call("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not become healthy")
            time.sleep(0.2)

        log(f"seeding {args.users} users × {args.tasks_per_user} tasks through the API …")
        started = time.time()
        run_id = f"{int(time.time())}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            seeded = list(pool.map(lambda i: seed_user(port, i, args.tasks_per_user, run_id), range(args.users)))
        log(f"seeded in {time.time() - started:.1f}s")
        data_file = workdir / "users.tsv"
        data_file.write_text("".join(f"{t}\t{task}\t{email}\t{PASSWORD}\t{project}\t{cursor}\n"
                                     for t, task, email, project, cursor in seeded))

        pg = {"pgbench": shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench",
              "psql": shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql",
              "socket": str(data_dir / "run")}
        rows = ",".join(f"({i + 1}, '{task}', '{project}')" for i, (_, task, _, project, _) in enumerate(seeded))
        emails = ",".join(f"({i + 1}, '{email}')" for i, (_, _, email, _, _) in enumerate(seeded))
        setup = (f"CREATE TABLE bench_users (n int PRIMARY KEY, id uuid, task uuid, project uuid);"
                 f"CREATE TEMP TABLE t (n int, task uuid, project uuid); INSERT INTO t VALUES {rows};"
                 f"CREATE TEMP TABLE e (n int, email text); INSERT INTO e VALUES {emails};"
                 f"INSERT INTO bench_users SELECT t.n, u.id, t.task, t.project FROM t JOIN e USING (n) JOIN users u ON u.email = e.email;"
                 f"GRANT SELECT ON bench_users TO taskapi_app; ANALYZE;")
        subprocess.run([pg["psql"], "-q", "-h", pg["socket"], "-U", "postgres", "-d", "taskapi", "-c", setup],
                       check=True, capture_output=True)

        # The SQL of the binary under test: one from before the change counter lacks it.
        counter = subprocess.run(
            [pg["psql"], "-qAt", "-h", pg["socket"], "-U", "postgres", "-d", "taskapi", "-c",
             "SELECT count(*) FROM pg_proc WHERE proname = 'take_change_seq'"],
            check=True, capture_output=True, text=True).stdout.strip() != "0"
        global PGBENCH_SCRIPTS
        PGBENCH_SCRIPTS = pgbench_scripts(counter)

        cores = os.cpu_count() or 1
        hash_ms = argon2_ms() if "login" in scenarios else None
        results = []
        for scenario in scenarios:
            runs = []
            for c in connections:
                peak_rss_reset(server.pid)
                run = run_wrk(port, scenario, c, args.duration, data_file)
                run["peak_rss_mib"] = peak_rss_kib(server.pid) / 1024
                runs.append(run)
                log(f"{scenario:7} c={c:<3} {run['rps']:9.0f} req/s  p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms  errors {run['errors']}")
            best = max(runs, key=lambda r: r["rps"])
            result = {"scenario": scenario, **best, "runs": runs}
            if scenario == "login":
                result["ceiling_rps"] = cores * 1000 / hash_ms
                result["ceiling"] = f"{cores} cores / {hash_ms:.1f} ms per Argon2id hash"
            else:
                # The API never holds more database connections than its pool: neither may pgbench.
                db_connections = min(best["connections"], args.pool_size)
                result["ceiling_rps"] = run_pgbench(pg, scenario, db_connections, args.duration, args.users, workdir)
                result["ceiling"] = f"pgbench, same SQL, {db_connections} connections"
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
                with_rls = run_pgbench(pg, scenario, args.pool_size, args.duration, args.users, workdir)
                without = run_pgbench(pg, scenario, args.pool_size, args.duration, args.users, workdir,
                                      sources=WITHOUT_RLS, role="postgres")
                ratios.append(with_rls / without)
                log(f"RLS cost {scenario}: {with_rls:.0f} tps with, {without:.0f} without")
            ratios.sort()
            rls_cost[scenario] = {"median_ratio": ratios[len(ratios) // 2], "ratios": ratios}

        storm = None
        if "login" in scenarios and "list" in scenarios:
            storm = login_storm(port, server.pid, args.duration, data_file)

        scale = [] if args.no_scale else run_scale(port, pg, args, workdir, data_file)

        print()
        print(f"{'scenario':9} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'RSS MiB':>8} {'ceiling':>9} {'ratio':>6}")
        for r in results:
            print(f"{r['scenario']:9} {r['connections']:>5} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['errors']:>7} {r['peak_rss_mib']:>8.1f} {r['ceiling_rps']:>9.0f} {r['ratio']:>6.2f}")
        for r in results:
            if "half_load" in r:
                h = r["half_load"]
                print(f"{r['scenario']} at ~half load: {h['rps']:.0f} req/s, p50 {h['p50_ms']:.2f} ms, p99 {h['p99_ms']:.2f} ms")
        for scenario, cost in rls_cost.items():
            print(f"row-level security on {scenario}: {100 * (1 - cost['median_ratio']):.1f}% fewer transactions/s "
                  f"(median of {len(cost['ratios'])} alternating pgbench rounds)")
        if storm:
            print(f"login storm (64 connections): list p99 {storm['storm']['p99_ms']:.2f} ms vs "
                  f"{storm['quiet']['p99_ms']:.2f} ms quiet ({storm['p99_factor']:.1f}×), "
                  f"peak RSS {storm['peak_rss_mib']:.1f} MiB")
        for row in scale:
            print(f"growth: {row['what']:<34} {row['rps']:>8.0f} req/s  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms")
        if hash_ms:
            print(f"Argon2id: {hash_ms:.1f} ms per hash on one core; RSS includes up to {cores} × 19 MiB while hashing")

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit, "cores": cores,
                  "users": args.users, "tasks_per_user": args.tasks_per_user, "duration_s": args.duration,
                  "argon2_ms": hash_ms, "pool_size": args.pool_size, "results": results, "rls_cost": rls_cost,
                  "growth": scale, "login_storm": storm}
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        (out / f"{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
        svg_chart(results, out / "latest.svg")
        log(f"results: {out / (stamp + '.json')}, chart: {out / 'latest.svg'}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
