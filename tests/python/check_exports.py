"""Checks fstore's exports of a model with the real libraries: pyarrow reads the Arrow schema
and it matches the samples' Parquet schema; Triton's ModelConfig (from the tritonclient wheel)
parses the input/output blocks; the TF spec and the Python module agree on inputs and order.

usage: check_exports.py DIR SAMPLES
DIR holds model.arrow (+ model.arrow.json), model_tf.json, model_inputs.py, config.pbtxt,
signature.json, as the test exports them. Prints "exports ok" or exits non-zero.
"""
import importlib.util
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    out, samples = sys.argv[1:3]
    signature = json.load(open(os.path.join(out, "signature.json")))
    inputs = [i["name"] for i in signature["inputs"]]
    labels = [o["name"] for o in signature["outputs"]]

    # Arrow: the IPC schema reads in pyarrow and is the samples' schema, plus metadata.
    with open(os.path.join(out, "model.arrow"), "rb") as f:
        schema = pa.ipc.open_stream(f.read()).schema
    sample_schema = ds.dataset(samples, format="parquet").schema
    assert schema.names == sample_schema.names, (schema.names, sample_schema.names)
    for field in schema:
        assert field.type == sample_schema.field(field.name).type, (field, sample_schema.field(field.name))
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert json.loads(meta["fstore.inputs"]) == inputs
    assert json.loads(meta["fstore.outputs"]) == labels
    assert meta["fstore.spec_fingerprint"] == signature["spec_fingerprint"]
    assert sample_schema.metadata[b"fstore.spec_fingerprint"].decode() == signature["spec_fingerprint"]
    for i in signature["inputs"]:
        fm = {k.decode(): v.decode() for k, v in schema.field(i["name"]).metadata.items()}
        assert int(fm["fstore.input_index"]) == i["index"]
        assert fm["fstore.encoding"] == i["encoding"]["kind"]
        assert json.loads(fm["fstore.default"]) == i["default"]
        if i["encoding"]["kind"] == "categorical":
            assert int(fm["fstore.num_ids"]) == i["encoding"]["num_ids"]
        if i["from"] == "feature":
            assert fm["fstore.group"] == i["group"] and fm["fstore.feature"] == i["feature"]
        if i["from"] == "transform":
            assert fm["fstore.transform"] == i["expr"]
    for name in labels:
        assert schema.field(name).metadata[b"fstore.output"] == b"true"
    arrow_json = json.load(open(os.path.join(out, "model.arrow.json")))
    assert [f["name"] for f in arrow_json["fields"]] == schema.names

    # Triton: the blocks parse as ModelConfig text format, one input per model input in order.
    import tritonclient

    path = os.path.join(os.path.dirname(tritonclient.__file__), "grpc", "model_config_pb2.py")
    model_config = load(path, "model_config_pb2")
    from google.protobuf import text_format

    config = text_format.Parse(open(os.path.join(out, "config.pbtxt")).read(), model_config.ModelConfig())
    assert [i.name for i in config.input] == inputs, [i.name for i in config.input]
    assert [o.name for o in config.output] == labels
    want = {"dense": "TYPE_FP32", "categorical": "TYPE_INT64", "text": "TYPE_STRING"}
    for i, t in zip(signature["inputs"], config.input):
        assert model_config.DataType.Name(t.data_type) == want[i["encoding"]["kind"]], (i, t)
        assert list(t.dims) == [1]

    # TF feature spec: every input, in order, with a dtype and default per encoding.
    tf = json.load(open(os.path.join(out, "model_tf.json")))
    assert tf["input_order"] == inputs and list(tf["features"]) == inputs
    tf_dtype = {"dense": "float32", "categorical": "int64", "text": "string"}
    for i in signature["inputs"]:
        f = tf["features"][i["name"]]
        assert f["type"] == "FixedLenFeature" and f["dtype"] == tf_dtype[i["encoding"]["kind"]], f
        assert f["default_value"] == i["default"]
    assert list(tf["labels"]) == labels

    # The Python module: same inputs and order; its batches have the right shapes and ids.
    m = load(os.path.join(out, "model_inputs.py"), "model_inputs")
    assert m.INPUTS == inputs and m.LABELS == labels
    n = 0
    for b in m.read_batches(samples, batch_size=500):
        rows = len(b["label"])
        n += rows
        assert b["dense"].shape == (rows, len(m.DENSE)) and b["dense"].dtype.name == "float32"
        assert b["categorical"].shape == (rows, len(m.CATEGORICAL))
        for j, name in enumerate(m.CATEGORICAL):
            ids = b["categorical"][:, j]
            assert ids.min() >= 0 and ids.max() < m.NUM_IDS[name], (name, ids.min(), ids.max())
    assert n == ds.dataset(samples, format="parquet").count_rows()
    print(f"exports ok: {len(inputs)} inputs, {n} samples read through the module")


if __name__ == "__main__":
    main()
