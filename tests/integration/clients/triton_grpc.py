"""Call a V2 gRPC endpoint with tritonclient.grpc, in its own process.

tritonclient.grpc and kserve register the same protobuf package (``inference``), so
they cannot be imported into one interpreter; the tests run this script instead. It
reads ``{"url", "model", "inputs": [{"name", "datatype", "shape", "data"}]}`` as JSON
on stdin and prints ``{"outputs": {name: [...]}, "model_version": ...}`` or
``{"error": {"status": ..., "message": ...}}``.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

spec = json.load(sys.stdin)
client = grpcclient.InferenceServerClient(url=spec["url"])
inputs = []
for tensor in spec["inputs"]:
    dtype = np.object_ if tensor["datatype"] == "BYTES" else np.float64
    values = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
    if tensor["datatype"] == "BYTES":
        values = np.vectorize(lambda v: b"" if v is None else str(v).encode(), otypes=[np.object_])(values)
    item = grpcclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
    item.set_data_from_numpy(values)
    inputs.append(item)
try:
    result = client.infer(spec["model"], inputs)
except InferenceServerException as exc:
    print(json.dumps({"error": {"status": exc.status(), "message": exc.message()}}))
    sys.exit(0)
response = result.get_response()
outputs = {}
for output in response.outputs:
    array = result.as_numpy(output.name)
    outputs[output.name] = [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]
print(json.dumps({"outputs": outputs, "model_version": response.model_version, "live": client.is_server_live()}))
