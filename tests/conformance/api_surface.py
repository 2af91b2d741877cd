"""Every TensorRT Python name the project's engine path relies on, as data, checked against NVIDIA's real bindings.

Two users, two halves:
* PROJECT: what resvit_export/trt/{builder,runner}.py and bundle/device/run_engine.py call themselves
  (tests/conformance/test_tensorrt_api.py also type-checks those files against stubs of each real module, so a
  name used there but missing from this table is still caught).
* POLYGRAPHY: what Polygraphy's TensorRT backend calls on the path the project takes (NetworkFromOnnxPath,
  CreateConfig with profiles/pools/timing cache/optimization level/progress monitor, EngineBytesFromNetwork with
  save_timing_cache, EngineFromBytes, TrtRunner with allocation_strategy="profile" and set_profile). ``where`` is
  the file and line in the locked Polygraphy (constraints.txt); test_polygraphy_citations_match_the_locked_source
  re-reads each line so the table cannot silently drift from the Polygraphy that is installed.

``kind``: class / enum (a member of an enum class) / method (``args`` = the leading parameter names of a pybind11
overload whose remaining parameters have defaults) / property (``settable`` when the code assigns it) / function /
attribute. ``guarded``: Polygraphy wraps the call in ``try/except AttributeError``. ``since``/``until``: the
versions that must have it (until = first version without it); outside that range the name must be ABSENT, which is
how version claims (e.g. BuilderFlag.FP16 removed in 11) are checked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Api:
    name: str  # dotted path below the tensorrt module
    kind: str
    args: tuple[str, ...] | None = None
    settable: bool = False
    since: tuple[int, ...] | None = None
    until: tuple[int, ...] | None = None
    where: str = ""
    guarded: bool = False  # the caller catches AttributeError: absence is handled, presence must still match


    def expected(self, version: tuple[int, ...]) -> bool:
        return (self.since is None or version >= self.since) and (self.until is None or version < self.until)


_B = "resvit_export/trt/builder.py"
_R = "resvit_export/trt/runner.py"
_D = "resvit_export/bundle/device/run_engine.py"

PROJECT: tuple[Api, ...] = (
    Api("__version__", "attribute", where=f"{_B}, {_R}, {_D}"),
    Api("IProgressMonitor", "class", where=f"{_B} make_progress_monitor (subclassed)"),
    Api("IProgressMonitor.phase_start", "method", ("phase_name", "parent_phase", "num_steps"), where=_B),
    Api("IProgressMonitor.step_complete", "method", ("phase_name", "step"), where=_B),
    Api("IProgressMonitor.phase_finish", "method", ("phase_name",), where=_B),
    Api("MemoryPoolType.WORKSPACE", "enum", where=f"{_B} _memory_pool_limits"),
    Api("MemoryPoolType.TACTIC_DRAM", "enum", where=f"{_B} _memory_pool_limits"),
    Api("INetworkDefinition.num_inputs", "property", where=_B),
    Api("INetworkDefinition.get_input", "method", ("index",), where=_B),
    Api("ITensor.name", "property", settable=True, where=_B),
    Api("ICudaEngine", "class", where=_R),
    Api("ICudaEngine.num_io_tensors", "property", where=f"{_R}, {_D}"),
    Api("ICudaEngine.get_tensor_name", "method", ("index",), where=f"{_R}, {_D}"),
    Api("ICudaEngine.get_tensor_mode", "method", ("name",), where=f"{_R}, {_D}"),
    Api("ICudaEngine.get_tensor_dtype", "method", ("name",), where=f"{_R}, {_D}"),
    Api("ICudaEngine.num_optimization_profiles", "property", where=f"{_R}, {_D}"),
    Api("ICudaEngine.get_tensor_profile_shape", "method", ("name", "profile_index"), where=f"{_R}, {_D}"),
    Api("ICudaEngine.create_execution_context", "method", ("strategy",), where=_D),
    Api("TensorIOMode.INPUT", "enum", where=f"{_R}, {_D}"),
    Api("nptype", "function", where=f"{_R}, {_D}"),
    Api("Logger", "class", where=_D),
    Api("Logger.WARNING", "enum", where=_D),
    Api("Runtime", "class", where=_D),
    Api("Runtime.deserialize_cuda_engine", "method", ("serialized_engine",), where=_D),
    Api("ExecutionContextAllocationStrategy.ON_PROFILE_CHANGE", "enum", where=_D),
    Api("IExecutionContext.set_optimization_profile_async", "method", ("profile_index", "stream_handle"), where=_D),
    Api("IExecutionContext.set_input_shape", "method", ("name", "shape"), where=_D),
    Api("IExecutionContext.set_tensor_address", "method", ("name", "memory"), where=_D),
    Api("IExecutionContext.get_tensor_shape", "method", ("name",), where=_D),
    Api("IExecutionContext.execute_async_v3", "method", ("stream_handle",), where=_D),
)

_PL = "polygraphy/backend/trt/loader.py"
_PC = "polygraphy/backend/trt/config.py"
_PP = "polygraphy/backend/trt/profile.py"
_PR = "polygraphy/backend/trt/runner.py"
_PU = "polygraphy/backend/trt/util.py"

POLYGRAPHY: tuple[Api, ...] = (
    # NetworkFromOnnxPath -> CreateNetwork / BaseNetworkFromOnnx
    Api("Builder", "class", where=f"{_PL}:132 trt.Builder"),
    Api("NetworkDefinitionCreationFlag.STRONGLY_TYPED", "enum",
        where=f"{_PL}:146 trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED"),
    Api("Builder.create_network", "method", ("flags",), where=f"{_PL}:151 builder.create_network(flags="),
    Api("OnnxParser", "class", where=f"{_PL}:241 trt.OnnxParser("),
    Api("OnnxParser.parse_from_file", "method", ("model",), where=f"{_PL}:413 parser.parse_from_file("),
    Api("OnnxParser.num_errors", "property", where=f"{_PU}:88 parser.num_errors"),
    Api("OnnxParser.get_error", "method", ("index",), where=f"{_PU}:90 parser.get_error("),
    Api("ILogger", "class", where=f"{_PU}:54 trt.ILogger"),
    # CreateConfig + Profile.to_trt
    Api("Builder.create_builder_config", "method", (), where=f"{_PC}:217 builder.create_builder_config()"),
    Api("Builder.create_optimization_profile", "method", (), where=f"{_PP}:163 builder.create_optimization_profile()"),
    Api("ITensor.is_shape_tensor", "property", where=f"{_PP}:178 inp.is_shape_tensor"),
    Api("IOptimizationProfile.set_shape", "method", ("input", "min", "opt", "max"),
        where=f"{_PP}:196 trt_profile.set_shape("),
    Api("IBuilderConfig.add_optimization_profile", "method", ("profile",),
        where=f"{_PC}:246 config.add_optimization_profile("),
    Api("BuilderFlag.TF32", "enum", where=f"{_PC}:564 config.clear_flag(trt.BuilderFlag.TF32)"),
    Api("IBuilderConfig.clear_flag", "method", ("flag",), where=f"{_PC}:564 config.clear_flag("),
    Api("IBuilderConfig.set_flag", "method", ("flag",), where=f"{_PC}:227 config.set_flag("),
    Api("BuilderFlag.FP16", "enum", until=(11,), where=f"{_PC}:567 try_set_flag(\"FP16\")"),
    Api("IBuilderConfig.profiling_verbosity", "property", settable=True,
        where=f"{_PC}:299 config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED"),
    Api("ProfilingVerbosity.DETAILED", "enum", where=f"{_PC}:299 trt.ProfilingVerbosity.DETAILED"),
    Api("IBuilderConfig.set_memory_pool_limit", "method", ("pool", "pool_size"),
        where=f"{_PC}:306 config.set_memory_pool_limit("),
    Api("IBuilderConfig.create_timing_cache", "method", ("serialized_timing_cache",),
        where=f"{_PC}:327 config.create_timing_cache("),
    Api("IBuilderConfig.set_timing_cache", "method", ("cache", "ignore_mismatch"),
        where=f"{_PC}:344 config.set_timing_cache(cache, ignore_mismatch=False)"),
    Api("IBuilderConfig.builder_optimization_level", "property", settable=True,
        where=f"{_PC}:369 config.builder_optimization_level = "),
    Api("IBuilderConfig.progress_monitor", "property", settable=True, where=f"{_PC}:425 config.progress_monitor = "),
    # EngineBytesFromNetwork(save_timing_cache=...)
    Api("Builder.build_serialized_network", "method", ("network", "config"),
        where=f"{_PL}:783 builder.build_serialized_network("),
    Api("IBuilderConfig.get_timing_cache", "method", (), where=f"{_PL}:804 config.get_timing_cache()"),
    Api("ITimingCache.combine", "method", ("input_cache", "ignore_mismatch"), where=f"{_PL}:818 timing_cache.combine("),
    Api("ITimingCache.serialize", "method", (), where=f"{_PL}:826 timing_cache.serialize()"),
    # EngineFromBytes
    Api("Runtime.deserialize_cuda_engine", "method", ("serialized_engine",),
        where=f"{_PL}:957 deserialize_cuda_engine("),
    # TrtRunner(allocation_strategy="profile") + set_profile + infer
    Api("ExecutionContextAllocationStrategy.USER_MANAGED", "enum",
        where=f"{_PR}:243 trt.ExecutionContextAllocationStrategy.USER_MANAGED"),
    Api("IOutputAllocator", "class", where=f"{_PR}:80 trt.IOutputAllocator"),
    Api("IExecutionContext.set_optimization_profile_async", "method", ("profile_index", "stream_handle"),
        where=f"{_PR}:309 self.context.set_optimization_profile_async("),
    Api("IExecutionContext.active_optimization_profile", "property",
        where=f"{_PR}:482 self.context.active_optimization_profile"),
    Api("ICudaEngine.get_device_memory_size_for_profile_v2", "method", ("profile_index",),
        where=f"{_PR}:481 self.engine.get_device_memory_size_for_profile_v2("),
    Api("IExecutionContext.set_device_memory", "method", ("memory", "size"),
        where=f"{_PR}:500 self.context.set_device_memory("),
    Api("ICudaEngine.is_shape_inference_io", "method", ("name",),
        where=f"{_PR}:367 self.engine.is_shape_inference_io("),
    Api("ICudaEngine.get_tensor_format", "method", ("name",), where=f"{_PU}:696 engine.get_tensor_format(name)"),
    Api("TensorFormat.LINEAR", "enum", where=f"{_PR}:392 trt.TensorFormat.LINEAR"),
    Api("TensorFormat.HWC", "enum", where=f"{_PR}:384 trt.TensorFormat.HWC"),
    Api("TensorFormat.CHW16", "enum", where=f"{_PR}:393 trt.TensorFormat.CHW16"),
    Api("IExecutionContext.get_tensor_address", "method", ("name",),
        where=f"{_PR}:415 self.context.get_tensor_address("),
    Api("IExecutionContext.set_output_allocator", "method", ("name", "output_allocator"),
        where=f"{_PR}:468 self.context.set_output_allocator("),
    Api("ICudaEngine.get_aliased_input_tensor", "method", ("name",), guarded=True,
        where=f"{_PR}:437 self.engine.get_aliased_input_tensor("),
    Api("TensorIOMode.OUTPUT", "enum", where=f"{_PR}:433 trt.TensorIOMode.OUTPUT"),
    Api("IExecutionContext.execute_async_v3", "method", ("stream_handle",),
        where=f"{_PR}:507 self.context.execute_async_v3("),
)

# versions.API_FEATURES keys whose claim is a TensorRT Python name: has_api(version, key) must equal "the name
# exists in that version's bindings" (trtexec flags and behaviours are checked elsewhere or not at all).
FEATURE_NAMES: dict[str, str] = {
    "BuilderFlag.FP16": "BuilderFlag.FP16",
    "BuilderFlag.INT8": "BuilderFlag.INT8",
    "IInt8Calibrator": "IInt8Calibrator",
    "ICudaEngine.device_memory_size": "ICudaEngine.device_memory_size",
    "ICudaEngine.device_memory_size_v2": "ICudaEngine.device_memory_size_v2",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED": "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "IProgressMonitor": "IProgressMonitor",
    "ExecutionContextAllocationStrategy": "ExecutionContextAllocationStrategy",
    "builder_optimization_level": "IBuilderConfig.builder_optimization_level",
    "MemoryPoolType.TACTIC_DRAM": "MemoryPoolType.TACTIC_DRAM",
}
