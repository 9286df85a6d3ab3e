"""Calls fstore's GetFeatures from Python with a client generated from proto/ by grpcio-tools.

usage: get_features.py PROTO_DIR SERVER GROUP REQUEST_TIME_US KEY...
Prints one JSON object: status name, event time and feature values per key.
"""
import json
import math
import sys
import tempfile

from grpc_tools import protoc


def main():
    proto_dir, server, group, at, *keys = sys.argv[1:]
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
    )
    resp = stub.GetFeatures(req, timeout=10)
    g = resp.groups[0]

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


if __name__ == "__main__":
    main()
