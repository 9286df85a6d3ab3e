"""Calls fstore's GetFeatures from Python with a client generated from proto/ by grpcio-tools.

usage: get_features.py [--arrow] PROTO_DIR SERVER GROUP REQUEST_TIME_US KEY...
Prints one JSON object: status name, event time and feature values per key. With --arrow the
response comes as Arrow IPC (RESPONSE_FORMAT_ARROW_IPC) and is read with pyarrow; the printed
object is the same.
"""
import json
import math
import sys
import tempfile

from grpc_tools import protoc


def main():
    args = sys.argv[1:]
    arrow = args[:1] == ["--arrow"]
    proto_dir, server, group, at, *keys = args[1:] if arrow else args
    out = tempfile.mkdtemp()
    rc = protoc.main([
        "protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
        "fstore/v1/features.proto", "fstore/v1/registry.proto",
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    import grpc
    from fstore.v1 import features_pb2 as pb
    from fstore.v1 import features_pb2_grpc as rpc

    stub = rpc.FeatureServiceStub(grpc.insecure_channel(server))
    req = pb.GetFeaturesRequest(
        refs=[group],
        keys=[pb.EntityKey(parts=[pb.KeyPart(string_value=k)]) for k in keys],
        request_time_us=int(at),
        format=pb.RESPONSE_FORMAT_ARROW_IPC if arrow else pb.RESPONSE_FORMAT_COLUMNS,
    )
    resp = stub.GetFeatures(req, timeout=10)
    g = resp.groups[0]
    if arrow:
        print(json.dumps({"registry_version": resp.registry_version,
                          "rows": arrow_rows(pb, g, keys)}))
        return

    def cell(col, dtype, i):
        if not col.valid[i]:
            return None
        if dtype == "DOUBLE":
            d = col.double_values[i]
            return repr(d) if math.isnan(d) or math.isinf(d) else d
        if dtype in ("INT64", "TIMESTAMP"):
            return col.int64_values[i]
        if dtype == "BOOLEAN":
            return col.bool_values[i]
        return col.string_values[i]

    rows = []
    for i, k in enumerate(keys):
        rows.append({
            "key": k,
            "status": pb.KeyStatus.Name(g.status[i]),
            "event_time_us": g.event_time_us[i],
            "features": {f.name: cell(f.values, f.dtype, i) for f in g.features},
        })
    print(json.dumps({"registry_version": resp.registry_version, "rows": rows}))


def arrow_rows(pb, g, keys):
    import pyarrow as pa

    table = pa.ipc.open_stream(g.arrow_ipc).read_all()
    assert not g.status and not g.features, "an Arrow IPC group also has protobuf columns"
    assert table.column_names[:2] == ["status", "event_time"], table.column_names
    assert table.schema.field("status").type == pa.uint8()
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    features = table.column_names[2:]
    data = table.to_pydict()
    # Timestamps as integers, not datetimes (which would round to what Python can hold).
    times = table.column("event_time").cast(pa.int64()).to_pylist()

    def cell(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return repr(v)
        return v

    rows = []
    for i, k in enumerate(keys):
        rows.append({
            "key": k,
            "status": pb.KeyStatus.Name(data["status"][i]),
            "event_time_us": times[i] if times[i] is not None else 0,
            "features": {f: cell(data[f][i]) for f in features},
        })
    return rows


if __name__ == "__main__":
    main()
