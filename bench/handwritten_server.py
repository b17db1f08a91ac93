"""The server a user would write by hand: FastAPI + one ONNX Runtime session (the baseline).

POST /infer with a raw float32 body (application/octet-stream) or JSON {"data": [...]}:
json.loads -> np.array -> run. Usage: python bench/handwritten_server.py MODEL.onnx PORT
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
shape = [int(d) for d in session.get_inputs()[0].shape[1:]]
app = FastAPI()


@app.post("/infer")
async def infer(request: Request):
    body = await request.body()
    if request.headers.get("content-type") == "application/octet-stream":
        x = np.frombuffer(body, dtype=np.float32).reshape(-1, *shape)
    else:
        x = np.array(json.loads(body)["data"], dtype=np.float32).reshape(-1, *shape)
    y = session.run(None, {"input": x})[0]
    return {"probabilities": y.tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
