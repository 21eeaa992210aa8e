#include "daemon/config/document.hpp"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "daemon/config/files.hpp"

namespace pwresetd::daemon::config_detail {

namespace {

// Where each document of a YAML stream starts, and where its root node is.
class document_marks final : public YAML::EventHandler {
public:
    [[nodiscard]] const std::vector<YAML::Mark>& starts() const noexcept { return starts_; }
    [[nodiscard]] const std::vector<YAML::Mark>& roots() const noexcept { return roots_; }

    void OnDocumentStart(const YAML::Mark& mark) override {
        starts_.push_back(mark);
        root_seen_ = false;
    }
    void OnDocumentEnd() override {}
    // An empty document has no node of its own to point at: its start stands for it.
    void OnNull(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
        node(roots_.size() < starts_.size() ? starts_.back() : mark);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { node(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  const std::string& /*value*/) override {
        node(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/,
                         YAML::anchor_t /*anchor*/, YAML::EmitterStyle::value /*style*/) override {
        node(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                    YAML::EmitterStyle::value /*style*/) override {
        node(mark);
    }
    void OnMapEnd() override {}

private:
    void node(const YAML::Mark& mark) {
        if (!root_seen_) {
            roots_.push_back(mark);
            root_seen_ = true;
        }
    }

    std::vector<YAML::Mark> starts_;
    std::vector<YAML::Mark> roots_;
    bool root_seen_ = false;
};

// The first document of `text` (null when there is none), and in `second` the root of a
// second one, if any. Throws YAML::Exception at a syntax error.
// Not YAML::LoadAll: in yaml-cpp 0.7 (Debian 12) it never returns on some malformed input
// (a stray ',' at the top level): the parser stops consuming, and each HandleNextDocument()
// yields one more empty document at the same place, in ever more memory (found by
// tests/fuzz/fuzz_config; jbeder/yaml-cpp#1040, fixed upstream by #1319). So at most two
// documents are walked with the event parser, one that starts where the previous one did is
// refused, and only the first is built.
YAML::Node first_document(const std::string& text, std::optional<YAML::Mark>& second) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    document_marks marks;
    while (marks.starts().size() < 2 && parser.HandleNextDocument(marks)) {
        const auto& starts = marks.starts();
        if (starts.size() == 2 && starts[1].pos == starts[0].pos) {
            const auto at = static_cast<std::size_t>(std::max(starts[1].pos, 0));
            const auto c = at < text.size() ? static_cast<unsigned char>(text[at]) : 0U;
            throw YAML::ParserException(
                starts[1], c > 0x20 && c < 0x7f
                               ? "unexpected '" + std::string(1, static_cast<char>(c)) + "'"
                               : std::string("unexpected character"));
        }
    }
    if (marks.roots().size() > 1) {
        second = marks.roots()[1];
    }
    return marks.starts().empty() ? YAML::Node() : YAML::Load(text);
}

}  // namespace

YAML::Node read_document(const std::filesystem::path& file, report& r) {
    std::string why;
    const auto text = read_text_file(file, why);
    if (!text) {
        r.file_error("cannot read: " + why);
        throw config_error(r.take_errors());
    }
    YAML::Node document;
    std::optional<YAML::Mark> second;
    try {
        document = first_document(*text, second);
    } catch (const YAML::Exception& e) {
        r.error(e.mark, "", e.msg);
        throw config_error(r.take_errors());
    }
    if (second) {
        r.error(*second, "", "only one YAML document is allowed");
    }
    return document.IsNull() ? YAML::Node(YAML::NodeType::Map) : document;
}

}  // namespace pwresetd::daemon::config_detail
