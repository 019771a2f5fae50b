"""The HOP query of scripts/bench-replay.sh on Apache Flink (PyFlink, Table API, streaming mode).

    python flink_hop.py EVENTS.ndjson [--parallelism N] [--out DIR]

Reads the NDJSON file with the filesystem connector and the json format, event time from
`ts` (unix ms) with the watermark at the largest time read, and runs count(*) and
sum(amount) per seller over HOP windows of 60 s every 10 s into a blackhole sink (or, with
--out, CSV files in DIR, to compare the answer with `weir replay --emit windows`). Prints one
JSON line: the job's seconds (from submission to the end, JVM start not included) and the
whole run's.
"""

import argparse
import json
import os
import time

START = time.time()

from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("events")
    p.add_argument("--parallelism", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out")
    a = p.parse_args()
    t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t.get_config()
    conf.set("parallelism.default", str(a.parallelism))
    conf.set("pipeline.name", "weir-bench-hop")
    t.execute_sql(f"""
        CREATE TABLE events (
            `type` STRING,
            ts BIGINT,
            seller STRING,
            amount BIGINT,
            rt AS TO_TIMESTAMP_LTZ(ts, 3),
            WATERMARK FOR rt AS rt
        ) WITH (
            'connector' = 'filesystem',
            'path' = 'file://{os.path.abspath(a.events)}',
            'format' = 'json'
        )""")
    if a.out:
        # Window bounds as unix ms, to compare with Weir's output.
        sink = (f"'connector' = 'filesystem', 'path' = 'file://{os.path.abspath(a.out)}', "
                "'format' = 'csv'")
        ts_type = "BIGINT"
        cols = ("seller, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT) * 1000, "
                "CAST(EXTRACT(EPOCH FROM window_end) AS BIGINT) * 1000")
    else:
        sink = "'connector' = 'blackhole'"
        ts_type = "TIMESTAMP_LTZ(3)"
        cols = "seller, window_start, window_end"
    t.execute_sql(f"""
        CREATE TABLE sink (
            seller STRING,
            window_start {ts_type},
            window_end {ts_type},
            n BIGINT,
            total BIGINT
        ) WITH ({sink})""")
    job = time.time()
    t.execute_sql(f"""
        INSERT INTO sink
        SELECT {cols}, n, total FROM (
            SELECT seller, window_start, window_end, COUNT(*) AS n, SUM(amount) AS total
            FROM TABLE(HOP(TABLE events, DESCRIPTOR(rt), INTERVAL '10' SECOND, INTERVAL '60' SECOND))
            WHERE `type` = 'order'
            GROUP BY seller, window_start, window_end
        )""").wait()
    end = time.time()
    print(json.dumps({"job_seconds": end - job, "total_seconds": end - START,
                      "parallelism": a.parallelism}))


if __name__ == "__main__":
    main()
