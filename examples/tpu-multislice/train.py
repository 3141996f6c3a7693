#!/usr/bin/env python3
"""Example TPU workload: checks the environment gangway gave it, meets the other workers at the
MegaScale coordinator (a real TCP barrier), runs a few "training" steps with a checkpoint that
survives preemption, and writes its result as JSON to GANGWAY_RESULT_FILE.

Standard library only. On failure it writes a serialized error to GANGWAY_ERROR_FILE and exits 1.
"""
import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback


class EnvironmentContractError(Exception):
    pass


def need(name):
    value = os.environ.get(name)
    if value is None or value == "":
        raise EnvironmentContractError(f"{name} is not set")
    return value


def check_environment():
    """Validate the contract; return this worker's coordinates."""
    host = int(need("EXECUTOR_CALL_INDEX"))
    slices = int(need("GANGWAY_NUM_SLICES"))
    slice_index = int(need("GANGWAY_SLICE_INDEX"))
    hosts_per_slice = int(need("GANGWAY_HOSTS_PER_SLICE"))
    for name in ("TPU_NAME", "TPU_VERSION", "TPU_ZONE", "TPU_SLICE_NAME", "TPU_HOST_ID", "TPU_NUM_DEVICES",
                 "GANGWAY_JOB_ID", "GANGWAY_ATTEMPT", "GANGWAY_RESULT_FILE"):
        need(name)
    if int(need("TPU_HOST_ID")) != host or not 0 <= host < hosts_per_slice:
        raise EnvironmentContractError(f"host index {host} out of range or TPU_HOST_ID differs")
    if int(need("TPU_POD_COUNT")) != slices:
        raise EnvironmentContractError("TPU_POD_COUNT differs from GANGWAY_NUM_SLICES")
    megascale = {k: v for k, v in os.environ.items() if k.startswith("MEGASCALE_")}
    if slices > 1:
        if int(need("MEGASCALE_NUM_SLICES")) != slices:
            raise EnvironmentContractError("MEGASCALE_NUM_SLICES differs from the slice count")
        if int(need("MEGASCALE_SLICE_ID")) != slice_index or int(need("EXECUTOR_CALL_SLICE")) != slice_index:
            raise EnvironmentContractError("MEGASCALE_SLICE_ID / EXECUTOR_CALL_SLICE differ from the slice index")
        address = need("MEGASCALE_COORDINATOR_ADDRESS")
        if not address.endswith(":" + need("MEGASCALE_PORT")):
            raise EnvironmentContractError("MEGASCALE_COORDINATOR_ADDRESS does not use MEGASCALE_PORT")
    elif megascale:
        raise EnvironmentContractError(f"single slice but MEGASCALE_* set: {sorted(megascale)}")
    return slice_index, host, slices, hosts_per_slice


def barrier(attempt, worker, total, timeout):
    """Meet every worker of this attempt at the coordinator; a worker of another attempt is refused."""
    host, port = need("GANGWAY_COORDINATOR_ADDRESS").rsplit(":", 1)
    hello = json.dumps({"attempt": attempt, "worker": worker}).encode() + b"\n"
    deadline = time.monotonic() + timeout
    if worker == 0:
        server = socket.create_server((host, int(port)), reuse_port=False)
        server.settimeout(1.0)
        peers, seen = [], {0}
        try:
            while len(seen) < total:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"barrier: {len(seen)} of {total} workers arrived")
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                conn.settimeout(5.0)
                msg = json.loads(conn.makefile().readline())
                if msg.get("attempt") != attempt:
                    conn.sendall(b'{"refused":"stale attempt"}\n')
                    conn.close()
                    continue
                seen.add(msg["worker"])
                peers.append(conn)
            for conn in peers:
                conn.sendall(b'{"go":true}\n')
                conn.close()
        finally:
            server.close()
        return
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2.0) as conn:
                conn.sendall(hello)
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                answer = json.loads(conn.makefile().readline() or "{}")
                if answer.get("go"):
                    return
                raise RuntimeError(f"barrier refused: {answer}")
        except (ConnectionRefusedError, socket.timeout, OSError) as e:
            if time.monotonic() > deadline:
                raise TimeoutError(f"barrier: coordinator {host}:{port} not reachable") from e
            time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument("--barrier", action="store_true", help="meet all workers at the coordinator first")
    parser.add_argument("--barrier-timeout", type=float, default=60.0)
    parser.add_argument("--checkpoint-dir", default=os.environ.get("TRAIN_CHECKPOINT_DIR"))
    parser.add_argument("--checkpoint", action="store_true",
                        help="checkpoint under $TMPDIR/gangway-checkpoints/$GANGWAY_JOB_ID, resumed after a preemption")
    parser.add_argument("--fail-on-attempt", type=int, default=0, help="exit 1 on this attempt (testing)")
    args = parser.parse_args()

    slice_index, host, slices, hosts_per_slice = check_environment()
    attempt = int(need("GANGWAY_ATTEMPT"))
    worker = int(need("GANGWAY_WORKER_INDEX"))
    total = slices * hosts_per_slice
    if args.fail_on_attempt == attempt:
        raise RuntimeError(f"asked to fail on attempt {attempt}")
    if args.barrier and total > 1:
        barrier(attempt, worker, total, args.barrier_timeout)

    start = 0
    ckpt = None
    if args.checkpoint and not args.checkpoint_dir:
        args.checkpoint_dir = os.path.join(tempfile.gettempdir(), "gangway-checkpoints", need("GANGWAY_JOB_ID"))
    if args.checkpoint_dir:
        os.makedirs(args.checkpoint_dir, exist_ok=True)
        ckpt = os.path.join(args.checkpoint_dir, f"worker-{worker}.json")
        if os.path.exists(ckpt):
            with open(ckpt) as f:
                start = json.load(f)["step"]
    loss = 1.0
    for step in range(start, args.steps):
        time.sleep(args.step_seconds)
        loss = 1.0 / (step + 2)
        if ckpt:
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"step": step + 1}, f)
            os.replace(ckpt + ".tmp", ckpt)

    result = {
        "slice": slice_index,
        "host": host,
        "worker": worker,
        "attempt": attempt,
        "resumedFromStep": start,
        "steps": args.steps,
        "loss": round(loss, 6),
        "tpu": os.environ["TPU_VERSION"],
        "megascaleSliceId": os.environ.get("MEGASCALE_SLICE_ID"),
    }
    with open(os.environ["GANGWAY_RESULT_FILE"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report the user's own exception, then fail
        path = os.environ.get("GANGWAY_ERROR_FILE")
        if path:
            with open(path, "w") as f:
                json.dump({"name": type(error).__name__, "message": str(error),
                           "stack": traceback.format_exc()}, f)
        traceback.print_exc()
        sys.exit(1)
