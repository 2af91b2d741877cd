"""torch -> dynamic-axis ONNX export with the range-narrowing check and the export record.

    export_onnx(model, out_path, profile, opset=18) -> ExportResult       image models [B,3,H,W]
    export_packed_navit(model, out_path, opset=18) -> ExportResult        NaViT packed sequences
    check_export(onnx_program, model, requests, input_names) -> ranges    raises RangeNarrowedError
    write_record(...) / read_record(dir) / load_reference_model(dir)       export.json
"""

from .onnx_export import (INPUT_NAME, OUTPUT_NAME, PACKED_INPUT_NAMES, ExportResult, export_onnx,
                          export_packed_navit, union_profile)
from .range_check import DimRequest, check_export
from .record import (RECORD_NAME, build_record, load_reference_model, read_record, write_export_record,
                     write_record)

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PACKED_INPUT_NAMES",
    "ExportResult",
    "export_onnx",
    "export_packed_navit",
    "union_profile",
    "DimRequest",
    "check_export",
    "RECORD_NAME",
    "build_record",
    "write_record",
    "write_export_record",
    "read_record",
    "load_reference_model",
]
