"""Parity validation: PyTorch eager FP32 vs ONNX Runtime over the whole resolution range, and the engine check.

    matrix.resolution_matrix(profile, size_rule, extra=(), batch_sizes=None) -> list[Case]
    matrix.merge_same_grid(cases, patch, reason) + grid_proof.prove_patch_grid_input(onnx, patch)
    inputs.gaussian / synthetic_images / make_inputs (the numpy-only generator shipped to the device)
    sides.run_both_sides(...)  PyTorch and ONNX Runtime at once, each compared forward once
    runners.run_onnx(onnx_path, feeds_list, isolated=False, threads=2) -> list[dict]   (+ run_onnx_timed)
    parity.validate_onnx(model, onnx_path, profiles, *, precision, tolerances, ...) -> ParityReport
    parity.validate_packed_navit(model, onnx_path, out_dir=None, ...) -> ParityReport
    reference.write_reference_set(out_dir, entries, ...)  PyTorch's outputs + input recipes for the device
    engine.validate_engine(plan, build_dir, runner=...) -> ParityReport   (parity.engine.*)
    engine.validate_engine_dir(build_dir, plan, runner_spec=...)   `validate DIR --engine PLAN`: refusals first
    report.write_reports(report, out_dir) -> {json, md, png, junit paths}

The verdict, the metrics and the report renderings are shared with the device in
``resvit_export/bundle/device/parity_core.py`` (numpy + stdlib only).

Submodules are not imported here: ``python -m resvit_export.validate.runners`` is the isolated ORT child and
must not be pre-imported by its package, and onnxruntime/polygraphy/matplotlib load only when used.
"""
