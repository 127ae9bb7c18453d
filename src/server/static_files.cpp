#include "server/static_files.h"

#include <string>

#include "server/app.h"

namespace sb::server {

const StaticFile* findStaticFile(std::string_view path) {
    if (path == "/") {
        path = "/index.html";
    }
    for (const StaticFile& f : staticFiles()) {
        if (f.path == path) {
            return &f;
        }
    }
    return nullptr;
}

void serveStaticFiles(App& app) {
    auto serve = [](const StaticFile* f) {
        return [f](const http::Request&, std::string_view) {
            // no-cache: revalidated on every load, so a new binary's files are used at once.
            return HttpReply{
                .content_type = std::string(f->content_type),
                .body = std::string(f->body),
                .extra_headers = "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"};
        };
    };
    for (const StaticFile& f : staticFiles()) {
        app.get(std::string(f.path), serve(&f));
    }
    if (const StaticFile* index = findStaticFile("/"); index != nullptr) {
        app.get("/", serve(index));
    }
}

}  // namespace sb::server
