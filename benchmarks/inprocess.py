"""The issue-17 pages and a questionnaire submission measured in-process (Django's test client, no HTTP server):
per request, the queries, the CPU time (best of 3 rounds) and the Python function calls (cProfile's count: the same
from run to run whatever the machine's load, so comparable before/after a change).

    ORTHOREG_DATA_DIR=/tmp/data orthoreg synth --patients 10000     # a registry (or ORTHOREG_DATABASE_URL=...)
    ORTHOREG_DATA_DIR=/tmp/data python benchmarks/inprocess.py      # every page and the submission
    ORTHOREG_DATA_DIR=/tmp/data python benchmarks/inprocess.py worklist --profile   # one page, with its profile

Uses the registry of the environment (it adds the benchmark user, and one clinic of due patients for the
submissions, as benchmarks/run.py does).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


@contextmanager
def counted(connection):
    """The statements run on `connection` inside the block (a list filled as they run)."""
    seen: list[str] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def calls_of(fn) -> int:
    profile = cProfile.Profile()
    profile.enable()
    fn()
    profile.disable()
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="pages to measure (healthz list search patient worklist cohort "
                                                 "submission); default all")
    parser.add_argument("--requests", type=int, default=5, help="requests per round (3 rounds)")
    parser.add_argument("--profile", action="store_true", help="print the profile of the pages measured")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from tests.formfill import form_body, form_fields

    import run as bench

    settings.ALLOWED_HOSTS = ["*"]
    bench.child_user()
    targets = bench.child_targets()
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    pages = {"healthz": "/healthz", "list": "/patients/", "search": f"/patients/?q={targets['name']}",
             "patient": f"/patients/{targets['patient']}/", "worklist": "/followup/",
             "cohort": "/reports/cohort/?show=1"}
    only = args.only or [*pages, "submission"]
    print(f"{connection.vendor}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name, path in pages.items():
        if name not in only:
            continue
        client.get(path)  # warm: per-process and per-session caches
        with counted(connection) as queries:
            assert client.get(path).status_code == 200, path
        best = float("inf")
        profile = cProfile.Profile() if args.profile else None
        for _ in range(3):
            started = time.process_time()
            if profile:
                profile.enable()
            for _ in range(args.requests):
                client.get(path)
            if profile:
                profile.disable()
            best = min(best, (time.process_time() - started) / args.requests)
        calls = calls_of(lambda path=path: client.get(path))
        print(f"{name:11} {len(queries):3} queries  {best * 1000:6.1f} ms CPU  {calls:7,} python calls")
        if profile:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
            print(out.getvalue())
    if "submission" in only:
        tokens = bench.child_links(str(args.requests + 1))["tokens"]
        gets, posts, counts, post_calls = [], [], set(), 0
        for n, token in enumerate(tokens):
            patient = Client()
            path = f"/s/{token}/"
            started = time.process_time()
            with counted(connection) as got:
                page = patient.get(path)
            got_cpu = time.process_time() - started
            assert page.status_code == 200, path
            body = form_body({**form_fields(page.content.decode()), "action": "submit"})

            def post(patient=patient, path=path, body=body):
                response = patient.post(path, body, content_type="application/x-www-form-urlencoded")
                assert response.status_code == 302, response.content[:300]

            if n == len(tokens) - 1:
                with counted(connection) as posted:
                    post_calls = calls_of(post)
            else:
                started = time.process_time()
                with counted(connection) as posted:
                    post()
                if n:  # the first warms
                    gets.append(got_cpu)
                    posts.append(time.process_time() - started)
            counts.add((len(got), len(posted)))
        print(f"submission  queries (GET, POST) {sorted(counts)}  median CPU GET "
              f"{statistics.median(gets) * 1000:.1f} ms, POST {statistics.median(posts) * 1000:.1f} ms  "
              f"POST {post_calls:,} python calls")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
