// Replays a fuzz target's committed corpus in the ordinary test suite (any compiler, no
// libFuzzer): every regular file of each folder given (or each file given) goes through
// LLVMFuzzerTestOneInput once, in name order. A folder that is missing or holds no input
// fails the run, so a lost corpus cannot pass silently.
//
//   replay_fuzz_config tests/fuzz/corpus/fuzz_config [crash-file...]
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

// Exactly the file's size, so ASan sees a read past the end of the input.
std::vector<std::uint8_t> read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> bytes(fs::file_size(file));
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): bytes as chars.
    if (!in || !in.read(reinterpret_cast<char*>(bytes.data()),
                        static_cast<std::streamsize>(bytes.size()))) {
        throw std::runtime_error("cannot read " + file.string());
    }
    return bytes;
}

// The inputs named by one argument, sorted; empty when there are none.
std::vector<fs::path> inputs_of(const fs::path& arg) {
    std::error_code ec;
    if (fs::is_regular_file(arg, ec)) {
        return {arg};
    }
    std::vector<fs::path> files;
    if (!fs::is_directory(arg, ec)) {
        return files;
    }
    for (const auto& entry : fs::directory_iterator(arg)) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string name = PWRESETD_FUZZ_TARGET;
    if (argc < 2) {
        std::cerr << "usage: replay_" << name << " CORPUS_DIR|FILE...\n";
        return 2;
    }
    std::size_t count = 0;
    try {
        for (int i = 1; i < argc; ++i) {
            const fs::path arg(argv[i]);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
            const auto files = inputs_of(arg);
            if (files.empty()) {
                std::cerr << "replay " << name << ": no inputs in " << arg.string()
                          << " (missing or empty corpus)\n";
                return 1;
            }
            for (const auto& file : files) {
                // Named first, so a crash's report can be traced to its input.
                std::cout << file.string() << std::endl;
                const auto bytes = read_file(file);
                LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
                ++count;
            }
        }
    } catch (const std::exception& e) {
        // An exception the target let through is a finding, like a crash.
        std::cerr << "replay " << name << ": uncaught exception: " << e.what() << "\n";
        return 1;
    }
    std::cout << "replay " << name << ": " << count << " inputs\n";
    return 0;
}
