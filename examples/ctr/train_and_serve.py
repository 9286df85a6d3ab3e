"""From definitions to a trained model and a served request, with no hand-written input list.

Trains a small CTR model (logistic regression in numpy) on `fstore sample` output, reading it
only through the module `fstore export ctr_model --format python` generated; then replays a
training event online: materializes the features as of the event's time, starts
`fstore serve`, asks `GetModelInputs` through a client generated from proto/ by grpcio-tools,
and checks that the served inputs equal the event's training row, value for value, and that
the model scores both the same.

    fstore apply examples/ctr --registry .fstore/registry
    fstore sample ctr --registry .fstore/registry --out .fstore/samples
    fstore export ctr_model --registry .fstore/registry --format python --out .fstore/ctr_model_inputs.py
    python3 examples/ctr/train_and_serve.py --fstore target/debug/fstore \
        --registry .fstore/registry --samples .fstore/samples \
        --module .fstore/ctr_model_inputs.py --work .fstore/replay

Needs numpy, pyarrow and grpcio-tools (scripts/setup.sh installs them).
"""
import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "examples", "ctr", "data")


def load_module(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def design(m, batch, scale=None):
    """The model's input matrix: dense inputs standardized, categorical ids one-hot."""
    dense = batch["dense"].astype(np.float64)
    dense = np.where(np.isfinite(dense), dense, 0.0)
    if scale is None:
        mean, std = dense.mean(axis=0), dense.std(axis=0)
        scale = (mean, np.where(std > 0, std, 1.0))
    parts = [(dense - scale[0]) / scale[1]]
    for j, name in enumerate(m.CATEGORICAL):
        onehot = np.zeros((len(dense), m.NUM_IDS[name]))
        onehot[np.arange(len(dense)), batch["categorical"][:, j]] = 1.0
        parts.append(onehot)
    parts.append(np.ones((len(dense), 1)))
    return np.concatenate(parts, axis=1), scale


def train(x, y, steps=300, lr=0.5, l2=1e-3):
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        w -= lr * (x.T @ (p - y) / len(y) + l2 * w)
    return w


def auc(scores, labels):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def same(a, b):
    """Equal arrays, NaN equal to NaN."""
    if a.dtype == object or b.dtype == object:
        return a.tolist() == b.tolist()
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def same_value(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def grpc_client(proto_dir, out):
    from grpc_tools import protoc

    rc = protoc.main([
        "protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
        "fstore/v1/features.proto", "fstore/v1/registry.proto",
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    from fstore.v1 import features_pb2, features_pb2_grpc

    return features_pb2, features_pb2_grpc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fstore", required=True, help="the fstore binary")
    ap.add_argument("--registry", required=True)
    ap.add_argument("--samples", required=True, help="fstore sample output of spec ctr")
    ap.add_argument("--module", required=True, help="the module fstore export --format python wrote")
    ap.add_argument("--work", required=True, help="a folder for the replay's online store")
    ap.add_argument("--proto", default=os.path.join(ROOT, "proto", "proto"))
    args = ap.parse_args()

    m = load_module(args.module)
    print(f"model {m.MODEL}: {len(m.INPUTS)} inputs {m.INPUTS}, labels {m.LABELS}")

    # Train on every sample, through the generated module only.
    batches = list(m.read_batches(args.samples))
    full = {
        "dense": np.concatenate([b["dense"] for b in batches]),
        "categorical": np.concatenate([b["categorical"] for b in batches]),
        "label": np.concatenate([b["label"] for b in batches]),
    }
    x, scale = design(m, full)
    y = np.nan_to_num(full["label"][:, 0])
    w = train(x, y)
    scores = 1.0 / (1.0 + np.exp(-(x @ w)))
    loss = -np.mean(y * np.log(scores + 1e-12) + (1 - y) * np.log(1 - scores + 1e-12))
    print(f"trained on {len(y)} samples: log loss {loss:.4f}, train AUC {auc(scores, y):.3f}")

    # Replay one training event: the first with a profile, item stats and activity.
    table = m.read_table(args.samples)
    rows = table.to_pylist()
    pick = next(
        i for i, r in enumerate(rows)
        if r["age"] is not None and r["ctr"] is not None and r["user_impr_1d"]
    )
    event = rows[pick]
    # The event time in microseconds, exactly (datetime.timestamp() goes through a float).
    at_us = table.column("ts").cast("int64").to_pylist()[pick]
    print(f"replaying request_id {event['request_id']} (user {event['user_id']}, item {event['item_id']}) at {event['ts']}")

    os.makedirs(args.work, exist_ok=True)
    online = f"rocksdb://{os.path.abspath(os.path.join(args.work, 'online'))}"
    sources = []
    for s in ("impressions", "user_profile", "item_stats"):
        sources += ["--source", f"{s}={os.path.join(DATA, s + '.parquet')}"]
    subprocess.run(
        [args.fstore, "materialize", "user_profile", "item_stats", "user_activity",
         "--registry", args.registry, "--online", online, "--namespace", "replay",
         "--as-of", iso(at_us)] + sources,
        check=True, stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [args.fstore, "serve", "--registry", args.registry, "--online", online,
         "--namespace", "replay", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        addr = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        with tempfile.TemporaryDirectory() as gen:
            pb, rpc = grpc_client(args.proto, gen)
            import grpc

            stub = rpc.FeatureServiceStub(grpc.insecure_channel(addr))
            columns = {}
            for name in ("request_id", "user_id", "item_id", "clicked"):
                v = event[name]
                if isinstance(v, bool):
                    columns[name] = pb.Scalar(bool_value=v)
                elif isinstance(v, int):
                    columns[name] = pb.Scalar(int64_value=v)
                elif v is not None:
                    columns[name] = pb.Scalar(string_value=v)
            resp = stub.GetModelInputs(
                pb.GetModelInputsRequest(
                    model=m.MODEL, rows=[pb.EventRow(columns=columns)], request_time_us=at_us
                ),
                timeout=10,
            )
    finally:
        server.terminate()
        server.wait()

    served_table = m.served_table(resp)
    training_row = table.slice(pick, 1).select(m.INPUTS)
    mismatches = []
    for name in m.INPUTS:
        got, want = served_table.column(name).to_pylist()[0], training_row.column(name).to_pylist()[0]
        if not same_value(got, want):
            mismatches.append(f"{name}: served {got!r}, training row {want!r}")
    served = m.from_model_inputs(resp)
    trained = m.to_inputs(table.slice(pick, 1))
    for name in m.INPUTS:
        if not same(served["inputs"][name], trained["inputs"][name]):
            mismatches.append(f"{name} (model input): served {served['inputs'][name]!r}, training {trained['inputs'][name]!r}")
    if mismatches:
        sys.exit("served inputs differ from the training row:\n  " + "\n  ".join(mismatches))
    xs, _ = design(m, served, scale)
    xt, _ = design(m, trained, scale)
    ps, pt = 1 / (1 + np.exp(-(xs @ w))), 1 / (1 + np.exp(-(xt @ w)))
    assert np.array_equal(ps, pt), (ps, pt)
    print(f"served inputs equal the training row ({len(m.INPUTS)} inputs); score {ps[0]:.4f} both ways")


def iso(us):
    import datetime

    t = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


if __name__ == "__main__":
    main()
