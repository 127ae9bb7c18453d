// The static files served over HTTP: the chat demo (web/, served at `/`) and the JS client's
// browser bundle (/switchboard.min.js), embedded in the binary at build time by
// cmake/embed_files.cmake (a generated .cpp defines staticFiles()). Nothing is read from disk
// at serve time.
#pragma once

#include <span>
#include <string_view>

namespace sb::server {

class App;

struct StaticFile {
    std::string_view path;          // URL path, "/index.html"
    std::string_view content_type;  // from the extension
    std::string_view body;
};

// Every embedded file (generated).
std::span<const StaticFile> staticFiles();

// The file served at `path` ("/" is /index.html), or nullptr.
const StaticFile* findStaticFile(std::string_view path);

// GET routes for every embedded file, and `/` for /index.html.
void serveStaticFiles(App& app);

}  // namespace sb::server
