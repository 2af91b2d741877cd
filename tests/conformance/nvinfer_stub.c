/* Stand-ins for the nine C entry points NVIDIA's Python bindings link (found with `nm -D --undefined-only
 * tensorrt_bindings/tensorrt.so` on the 10.3.0, 10.13.3.9 and 11.4.0.106 wheels). They exist so that the real
 * compiled module can be imported and inspected without NVIDIA's native libraries. Every factory returns NULL,
 * so trt.Builder / trt.Runtime raise TypeError ("factory function returned nullptr"): nothing can ever be built
 * or run with them. Compiled three times, once per library the module names (STUB_LIB selects the part). */
#include <stddef.h>

#if STUB_LIB == 1 /* libnvinfer.so.N */
void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
#elif STUB_LIB == 2 /* libnvonnxparser.so.N */
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
#else /* libnvinfer_plugin.so.N */
int initLibNvInferPlugins(void *logger, const char *plugin_namespace) { return 0; }
#endif
