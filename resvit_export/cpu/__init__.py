"""The CPU deployment path: the graph ONNX Runtime runs fastest, and an INT8 graph for CPUs with VNNI.

Stages (one module each, in order):

    session.py     one way to open an ONNX Runtime CPU session (threads, optimisation level, profiling)
    timing.py      interleaved latency rounds: the only timing the selection and benchmarks trust
    flops.py       FLOPs of what ONNX Runtime actually executed (its profiler), taken branches of an If only
    candidates.py  fp32 graphs worth trying (the TensorRT graph, the raw export, ORT's offline and transformer
                   optimisers), each proven equal to the TensorRT graph before it is timed
    int8.py        ONNX Runtime quantisation variants (dynamic, static QDQ, static QOperator), per-channel weights
    select.py      measure the candidates on this CPU and keep the fastest that passes parity

Nothing here imports onnxruntime at import time.
"""
