#pragma once
// api/openapi.json (the API as an OpenAPI 3.1 document), compiled in by CMake
// (openapi_document.cpp.in): GET /v1/openapi.json serves it without reading a file.
#include <string>

namespace pwresetd::daemon {

// The document's text, byte for byte as in the repository.
const std::string& openapi_document();

}  // namespace pwresetd::daemon
