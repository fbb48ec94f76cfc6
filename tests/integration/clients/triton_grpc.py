"""Call a V2 gRPC endpoint with tritonclient.grpc, in its own process.

tritonclient.grpc and kserve register the same protobuf package (``inference``), so
they cannot be imported into one interpreter; the tests run this script instead. It
reads ``{"url", "model", "inputs": [{"name", "datatype", "shape", "data"}]}`` as JSON
on stdin and prints ``{"outputs": {name: [...]}, "model_version": ...}`` or
``{"error": {"status": ..., "message": ...}}``. With ``"requests": [{"inputs", "outputs"?,
"model_version"?}, ...]`` instead of ``inputs`` it sends each and prints a list of answers.
A BYTES value ``{"hex": "..."}`` is sent as those raw bytes.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def _bytes(value):
    if value is None:
        return b""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return str(value).encode()


def infer(client, model, request):
    inputs = []
    for tensor in request["inputs"]:
        if tensor["datatype"] == "BYTES":
            values = np.array([_bytes(v) for v in tensor["data"]], dtype=np.object_).reshape(tensor["shape"])
        else:
            values = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        item = grpcclient.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        item.set_data_from_numpy(values)
        inputs.append(item)
    outputs = [grpcclient.InferRequestedOutput(name) for name in request.get("outputs", [])] or None
    try:
        result = client.infer(model, inputs, outputs=outputs, model_version=request.get("model_version", ""))
    except InferenceServerException as exc:
        return {"error": {"status": exc.status(), "message": exc.message()}}
    response = result.get_response()
    answer = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        answer[output.name] = [v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1).tolist()]
    return {"outputs": answer, "model_version": response.model_version}


spec = json.load(sys.stdin)
client = grpcclient.InferenceServerClient(url=spec["url"])
if "requests" in spec:
    print(json.dumps([infer(client, spec["model"], request) for request in spec["requests"]]))
    sys.exit(0)
answer = infer(client, spec["model"], spec)
if "outputs" in answer:
    answer["live"] = client.is_server_live()
print(json.dumps(answer))
