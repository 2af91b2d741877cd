"""Parity validation: PyTorch eager FP32 vs ONNX Runtime over the whole resolution range.

    matrix.resolution_matrix(profile, size_rule, extra=(), batch_sizes=None) -> list[Case]
    inputs.gaussian(n, h, w, seed) / inputs.synthetic_images(n, h, w, seed) -> np.ndarray [n, 3, h, w]
    runners.run_onnx(onnx_path, feeds_list, isolated=False, threads=2) -> list[dict]   (+ run_onnx_timed)
    parity.validate_onnx(model, onnx_path, profiles, *, precision, tolerances, ...) -> ParityReport
    parity.validate_packed_navit(model, onnx_path, out_dir=None, ...) -> ParityReport
    report.write_reports(report, out_dir) -> {json, md, png paths}

Submodules are not imported here: ``python -m resvit_export.validate.runners`` is the isolated ORT child and
must not be pre-imported by its package, and onnxruntime/polygraphy/matplotlib load only when used.
"""
