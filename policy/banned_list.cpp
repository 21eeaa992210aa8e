#include "policy/banned_list.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "policy/normalize.hpp"
#include "policy/password_policy.hpp"

namespace pwresetd::policy {

namespace {

constexpr std::size_t min_run = 4;
constexpr std::size_t pipeline_depth = 16;
constexpr unsigned position_bits = 7;  // 0..64: which deletion a slot holds

// A slot's 16-bit tag: 9 bits of the key (the slot comes from its high bits; the lowest of
// the 9 is forced to 1 so that no tag is 0, which marks an empty slot) over the 7-bit
// position (0: the term itself, k + 1: its deletion at k). A lookup can tell from the tags
// alone whether a slot could be what it wants.
constexpr std::uint16_t tag_of(std::uint64_t key, std::size_t position) {
    return static_cast<std::uint16_t>(((key & 0x1FFU) | 1U) << position_bits | position);
}

constexpr std::uint16_t tag_key_mask = 0x1FFU << position_bits;
__extension__ using uint128 = unsigned __int128;
constexpr std::size_t max_window = banned_list::max_term_length + 1;

// Polynomial hash modulo 2^64 over (code point + 1) with a fixed odd base, then a 64-bit
// finalizer over the hash and the length. Windows are at most 65 code points, far below the
// lengths at which the known modulo-2^64 collisions (Thue-Morse strings) appear, and every
// hit is confirmed against the term, so a collision costs time, never a wrong answer.
constexpr std::uint64_t hash_base = 0xD6E8FEB86659FD93ULL;

constexpr std::array<std::uint64_t, max_window + 1> base_powers() {
    std::array<std::uint64_t, max_window + 1> p{};
    p[0] = 1;
    for (std::size_t i = 1; i < p.size(); ++i) {
        p[i] = p[i - 1] * hash_base;
    }
    return p;
}

constexpr auto powers = base_powers();

constexpr std::uint64_t fmix64(std::uint64_t x) {
    x ^= x >> 33U;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33U;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33U;
    return x;
}

constexpr std::uint64_t key_of(std::uint64_t hash, std::size_t length) {
    return fmix64(hash + 0x9E3779B97F4A7C15ULL * length);
}

enum class affix : std::uint64_t { prefix = 0x5851F42D4C957F2DULL, suffix = 0x14057B7EF767814FULL };

constexpr std::uint64_t affix_key(std::uint64_t hash, std::size_t length, affix kind) {
    return fmix64(hash + 0xC2B2AE3D27D4EB4FULL * length + static_cast<std::uint64_t>(kind));
}

constexpr std::size_t block_words = 8;  // 512 bits, one cache line
constexpr std::size_t block_bytes = block_words * sizeof(std::uint64_t);
constexpr std::size_t affix_bits_per_estimate = 6;

constexpr std::uint64_t step(std::uint64_t prefix, char32_t c) {
    return prefix * hash_base + std::uint64_t{c} + 1;
}

// Hash of text[a, b) from the prefix hashes of text.
std::uint64_t range_hash(std::span<const std::uint64_t> prefix, std::size_t a, std::size_t b) {
    return prefix[b] - prefix[a] * powers[b - a];
}

// Hash of text[a, b) without the code point at k.
std::uint64_t deletion_hash(std::span<const std::uint64_t> prefix, std::size_t a, std::size_t b,
                            std::size_t k) {
    return range_hash(prefix, a, k) * powers[b - k - 1] + range_hash(prefix, k + 1, b);
}

// Prefix hashes of a password; they are as sensitive as its short windows.
class password_hashes {
public:
    explicit password_hashes(std::span<const char32_t> text) : prefix_(text.size() + 1) {
        for (std::size_t i = 0; i < text.size(); ++i) {
            prefix_[i + 1] = step(prefix_[i], text[i]);
        }
    }
    password_hashes(const password_hashes&) = delete;
    password_hashes& operator=(const password_hashes&) = delete;
    ~password_hashes() { wipe(prefix_.data(), prefix_.size() * sizeof(std::uint64_t)); }
    [[nodiscard]] std::span<const std::uint64_t> prefix() const noexcept { return prefix_; }

private:
    std::vector<std::uint64_t> prefix_;
};

using term_buffer = std::array<char32_t, banned_list::max_term_length>;
using key_buffer = std::array<std::uint64_t, max_window>;

// The index keys of a term: keys[0] the term itself, keys[k + 1] the term without its
// code point at k.
std::span<const std::uint64_t> term_keys(std::span<const char32_t> term, key_buffer& keys) {
    std::array<std::uint64_t, banned_list::max_term_length + 1> prefix{};
    for (std::size_t i = 0; i < term.size(); ++i) {
        prefix[i + 1] = step(prefix[i], term[i]);
    }
    const std::span<const std::uint64_t> p(prefix.data(), term.size() + 1);
    const std::size_t n = term.size();
    keys[0] = key_of(p[n], n);
    for (std::size_t k = 0; k < n; ++k) {
        keys[k + 1] = key_of(deletion_hash(p, 0, n, k), n - 1);
    }
    return {keys.data(), n + 1};
}

void append_utf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0U | (c >> 6U)));
        out.push_back(static_cast<char>(0x80U | (c & 0x3FU)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0U | (c >> 12U)));
        out.push_back(static_cast<char>(0x80U | ((c >> 6U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | (c & 0x3FU)));
    } else {
        out.push_back(static_cast<char>(0xF0U | (c >> 18U)));
        out.push_back(static_cast<char>(0x80U | ((c >> 12U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | ((c >> 6U) & 0x3FU)));
        out.push_back(static_cast<char>(0x80U | (c & 0x3FU)));
    }
}

// Decodes a term of the index (valid UTF-8 we wrote, at most max_term_length code points).
std::span<const char32_t> decode_term(std::string_view utf8, term_buffer& out) {
    std::size_t n = 0;
    std::size_t i = 0;
    while (i < utf8.size() && n < out.size()) {
        const auto c0 = static_cast<unsigned char>(utf8[i]);
        std::size_t len = 1;
        char32_t c = c0;
        if (c0 >= 0xF0) {
            len = 4;
            c = c0 & 0x07U;
        } else if (c0 >= 0xE0) {
            len = 3;
            c = c0 & 0x0FU;
        } else if (c0 >= 0xC0) {
            len = 2;
            c = c0 & 0x1FU;
        }
        for (std::size_t k = 1; k < len && i + k < utf8.size(); ++k) {
            c = (c << 6U) | (static_cast<unsigned char>(utf8[i + k]) & 0x3FU);
        }
        out[n++] = c;
        i += len;
    }
    return {out.data(), n};
}

bool within_one_edit(std::span<const char32_t> a, std::span<const char32_t> b) {
    if (a.size() < b.size()) {
        std::swap(a, b);
    }
    if (a.size() - b.size() > 1) {
        return false;
    }
    std::size_t i = 0;
    while (i < b.size() && a[i] == b[i]) {
        ++i;
    }
    if (i == b.size()) {
        return true;
    }
    const std::size_t skip_b = a.size() == b.size() ? 1 : 0;
    return std::equal(a.begin() + static_cast<std::ptrdiff_t>(i + 1), a.end(),
                      b.begin() + static_cast<std::ptrdiff_t>(i + skip_b));
}

// a and b, of the same length, are equal but for the code point at k.
bool deletions_equal(std::span<const char32_t> a, std::span<const char32_t> b, std::size_t k) {
    return std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(k), b.begin()) &&
           std::equal(a.begin() + static_cast<std::ptrdiff_t>(k + 1), a.end(),
                      b.begin() + static_cast<std::ptrdiff_t>(k + 1));
}

bool is_edge_insertion(std::span<const char32_t> window, std::span<const char32_t> term) {
    if (window.size() != term.size() + 1) {
        return false;
    }
    return std::equal(term.begin(), term.end(), window.begin() + 1) ||
           std::equal(term.begin(), term.end(), window.begin());
}

std::string_view trim(std::string_view line) {
    constexpr std::string_view blanks = " \t\r";
    const auto first = line.find_first_not_of(blanks);
    if (first == std::string_view::npos) {
        return {};
    }
    return line.substr(first, line.find_last_not_of(blanks) - first + 1);
}

}  // namespace

struct banned_list::build {
    std::vector<std::string> terms;
    banned_load_stats stats;

    void add_line(std::string_view line) {
        ++stats.lines;
        line = trim(line);
        if (line.empty() || line.front() == '#') {
            return;
        }
        auto decoded = text::decode_utf8(line);
        if (!decoded) {
            ++stats.invalid_utf8;
            return;
        }
        if (decoded->size() < min_term_length) {
            ++stats.too_short;
            return;
        }
        if (decoded->size() > max_term_length) {
            ++stats.too_long;
            return;
        }
        normalize(*decoded);
        std::string term;
        term.reserve(line.size());
        for (const char32_t c : *decoded) {
            append_utf8(term, c);
        }
        terms.push_back(std::move(term));
    }

    banned_list finish() {
        std::sort(terms.begin(), terms.end());
        const auto end = std::unique(terms.begin(), terms.end());
        stats.duplicates = static_cast<std::uint64_t>(terms.end() - end);
        terms.erase(end, terms.end());
        stats.terms = terms.size();

        banned_list list;
        std::size_t blob_size = 0;
        for (const auto& t : terms) {
            blob_size += t.size();
        }
        if (blob_size > std::numeric_limits<std::uint32_t>::max()) {
            throw policy_error("banned words list too large (" + std::to_string(terms.size()) +
                               " terms)");
        }
        list.blob_.reserve(blob_size);
        list.offsets_.reserve(terms.size() + 1);
        std::uint64_t estimated_entries = 0;
        term_buffer buffer{};
        for (auto& t : terms) {
            list.blob_ += t;
            list.offsets_.push_back(static_cast<std::uint32_t>(list.blob_.size()));
            const std::size_t n = decode_term(t, buffer).size();
            list.lengths_.set(n);
            list.longest_ = std::max(list.longest_, n);
            estimated_entries += n + 1;
            std::string().swap(t);
        }
        terms = {};
        if (estimated_entries > std::numeric_limits<std::uint32_t>::max()) {
            throw policy_error("banned words list too large (" + std::to_string(stats.terms) +
                               " terms)");
        }

        list.slot_count_ = static_cast<std::size_t>(estimated_entries * 8 / 5) + 1;
        list.tags_.assign(list.slot_count_, 0);
        list.entries_.assign(list.slot_count_, 0);
        const std::uint64_t estimated_affixes = 2 * (estimated_entries - list.size());
        list.affix_blocks_ = static_cast<std::size_t>(
            estimated_affixes * affix_bits_per_estimate / (block_words * 64) + 1);
        list.affix_bits_.assign((list.affix_blocks_ + 1) * block_words, 0);
        const auto words = reinterpret_cast<std::uintptr_t>(list.affix_bits_.data());
        list.affix_base_ =
            (block_bytes - words % block_bytes) % block_bytes / sizeof(std::uint64_t);

        key_buffer keys{};
        std::size_t duplicate_deletions = 0;
        for (std::size_t id = 0; id < list.size(); ++id) {
            const auto term = decode_term(list.term(id), buffer);
            const auto k = term_keys(term, keys);
            std::array<std::uint64_t, max_term_length + 1> prefix{};
            for (std::size_t i = 0; i < term.size(); ++i) {
                prefix[i + 1] = step(prefix[i], term[i]);
            }
            const std::size_t n = term.size();
            for (std::size_t length = 1; length <= n; ++length) {
                list.add_affix(affix_key(prefix[length], length, affix::prefix));
                list.add_affix(affix_key(range_hash(prefix, n - length, n), length, affix::suffix));
            }
            for (std::size_t position = 0; position < k.size(); ++position) {
                if (!list.insert(k[position], position, id, term)) {
                    ++duplicate_deletions;
                }
            }
        }
        list.entry_count_ = estimated_entries - duplicate_deletions;
        list.stats_ = stats;
        return list;
    }
};

banned_list::banned_list()
    : offsets_{0}, tags_(1, 0), entries_(1, 0), slot_count_(1), affix_bits_(2 * block_words, 0) {}
banned_list::banned_list(banned_list&&) noexcept = default;
banned_list& banned_list::operator=(banned_list&&) noexcept = default;
banned_list::~banned_list() = default;

banned_list banned_list::load(const std::filesystem::path& file) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) {
        throw policy_error("banned words file " + file.string() + ": is a directory");
    }
    std::ifstream input(file, std::ios::binary);
    if (!input) {
        throw policy_error("banned words file " + file.string() +
                           ": cannot open: " + std::strerror(errno));
    }
    try {
        auto list = parse(input);
        if (input.bad()) {
            throw policy_error("read error");
        }
        return list;
    } catch (const policy_error& e) {
        throw policy_error("banned words file " + file.string() + ": " + e.what());
    }
}

banned_list banned_list::parse(std::istream& input) {
    build b;
    std::string line;
    bool first = true;
    while (std::getline(input, line)) {
        std::string_view view = line;
        if (first && view.starts_with("\xEF\xBB\xBF")) {
            view.remove_prefix(3);
        }
        first = false;
        b.add_line(view);
    }
    if (input.bad()) {
        throw policy_error("read error");
    }
    return b.finish();
}

banned_list banned_list::from_terms(std::span<const std::string_view> terms) {
    build b;
    for (const auto t : terms) {
        b.add_line(t);
    }
    return b.finish();
}

std::size_t banned_list::index_bytes() const noexcept {
    return blob_.capacity() + offsets_.capacity() * sizeof(std::uint32_t) +
           tags_.capacity() * sizeof(std::uint16_t) +
           affix_bits_.capacity() * sizeof(std::uint64_t) +
           entries_.capacity() * sizeof(std::uint32_t);
}

std::string_view banned_list::term(std::size_t i) const noexcept {
    return std::string_view(blob_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
}

bool banned_list::confirm(std::uint64_t id, std::span<const char32_t> window,
                          bool skip_edge_insertions) const {
    term_buffer buffer{};
    const auto t = decode_term(term(static_cast<std::size_t>(id)), buffer);
    return within_one_edit(window, t) && !(skip_edge_insertions && is_edge_insertion(window, t));
}

// Terms that share a 1-deletion at the same position share one slot: a lookup needs one
// term to confirm against, and a short deletion ("bab") shared by thousands of terms would
// otherwise be a cluster every lookup of it has to walk.
bool banned_list::insert(std::uint64_t key, std::size_t position, std::size_t id,
                         std::span<const char32_t> term) {
    const std::uint16_t tag = tag_of(key, position);
    std::size_t slot = first_slot(key);
    for (; tags_[slot] != 0; slot = slot + 1 == slot_count_ ? 0 : slot + 1) {
        if (position == 0 || tags_[slot] != tag) {
            continue;
        }
        term_buffer buffer{};
        const auto other = decode_term(this->term(entries_[slot]), buffer);
        if (other.size() == term.size() && deletions_equal(term, other, position - 1)) {
            return false;
        }
    }
    tags_[slot] = tag;
    entries_[slot] = static_cast<std::uint32_t>(id);
    return true;
}

std::size_t banned_list::affix_word(std::uint64_t key) const noexcept {
    const auto block = static_cast<std::size_t>((uint128{key} * affix_blocks_) >> 64U);
    return affix_base_ + block * block_words;
}

const std::uint64_t* banned_list::affix_block_of(std::uint64_t key) const noexcept {
    return affix_bits_.data() + affix_word(key);
}

// Four bits of the block, chosen by 9-bit slices of the key's low half.
void banned_list::add_affix(std::uint64_t key) noexcept {
    const std::size_t word = affix_word(key);
    for (unsigned i = 0; i < 4; ++i) {
        const auto bit = (key >> (9 * i)) & 511U;
        affix_bits_[word + bit / 64] |= std::uint64_t{1} << (bit % 64);
    }
}

bool banned_list::has_affix(std::uint64_t key) const noexcept {
    const std::size_t word = affix_word(key);
    for (unsigned i = 0; i < 4; ++i) {
        const auto bit = (key >> (9 * i)) & 511U;
        if ((affix_bits_[word + bit / 64] & (std::uint64_t{1} << (bit % 64))) == 0) {
            return false;
        }
    }
    return true;
}

std::size_t banned_list::first_slot(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((uint128{key} * slot_count_) >> 64U);
}

// One lookup of a window [begin, begin + length): its own key (deleted 0) or its key
// without the code point at begin + deleted - 1.
struct banned_list::lookup {
    std::uint64_t key;
    std::uint32_t begin;
    std::uint8_t length;
    std::uint8_t deleted;
};

bool banned_list::scan(const lookup& l, std::span<const char32_t> text,
                       bool skip_edge_insertions) const {
    // The window's own key finds terms equal to it or to which it is a 1-deletion: any
    // position. A 1-deletion of the window at j finds a term equal to it (position 0), or a
    // term whose 1-deletion at j equals it (a substitution at j); a 1-deletion of a term at
    // another position is two edits away, and the substitution, if there is one, has its own
    // lookup.
    const std::uint16_t want = tag_of(l.key, 0);
    const std::uint16_t substitution = tag_of(l.key, l.deleted);
    const auto window = text.subspan(l.begin, l.length);
    for (std::size_t slot = first_slot(l.key);; slot = slot + 1 == slot_count_ ? 0 : slot + 1) {
        const std::uint16_t t = tags_[slot];
        if (t == 0) {
            return false;
        }
        const bool candidate =
            l.deleted == 0 ? (t & tag_key_mask) == want : t == want || t == substitution;
        if (candidate && confirm(entries_[slot], window, skip_edge_insertions)) {
            return true;
        }
    }
}

// A window of length w is within one edit of a term of length w (equal, or a 1-deletion of
// each at the same position), w + 1 (the window is a 1-deletion of the term) or w - 1 (a
// 1-deletion of the window is the term), so its own key and its 1-deletion keys find every
// candidate.
template <typename Emit>
void banned_list::window_lookups(std::span<const std::uint64_t> prefix, std::size_t begin,
                                 std::size_t length, bool whole, std::size_t first_deletion,
                                 std::size_t last_deletion, Emit&& emit) const {
    const std::size_t end = begin + length;
    const auto b = static_cast<std::uint32_t>(begin);
    const auto w = static_cast<std::uint8_t>(length);
    if (whole && (has_length(length) || has_length(length + 1))) {
        emit(lookup{key_of(range_hash(prefix, begin, end), length), b, w, 0});
    }
    if (length > 1 && (has_length(length) || has_length(length - 1))) {
        for (std::size_t k = first_deletion; k <= last_deletion && k < length; ++k) {
            emit(lookup{key_of(deletion_hash(prefix, begin, end, begin + k), length - 1), b, w,
                        static_cast<std::uint8_t>(k + 1)});
        }
    }
}

bool banned_list::matches(std::span<const char32_t> normalized) const {
    if (empty() || normalized.size() > longest_ + 1) {
        return false;
    }
    const password_hashes hashes(normalized);
    bool found = false;
    window_lookups(hashes.prefix(), 0, normalized.size(), true, 0, normalized.size(),
                   [&](const lookup& l) { found = found || scan(l, normalized, false); });
    return found;
}

std::vector<text_span> banned_list::find(std::span<const char32_t> normalized) const {
    std::vector<text_span> found;
    if (empty()) {
        return found;
    }
    const window_finder finder(*this, normalized);
    std::vector<std::uint32_t> ends;
    for (std::size_t begin = 0; begin < normalized.size(); ++begin) {
        finder.ends_from(begin, 0, {}, 0, ends);
        for (const auto end : ends) {
            found.push_back({static_cast<std::uint32_t>(begin), end});
        }
    }
    return found;
}

banned_list::window_finder::window_finder(const banned_list& list,
                                          std::span<const char32_t> normalized)
    : list_(list),
      text_(normalized),
      prefix_(normalized.size() + 1),
      suffix_(normalized.size() + 1, -1) {
    for (std::size_t i = 0; i < normalized.size(); ++i) {
        prefix_[i + 1] = step(prefix_[i], normalized[i]);
    }
}

namespace {

// The longest l <= most for which has(key(l)) holds for 1..l, keys four at a time: most
// walks stop within the first four, and the four blocks are fetched together.
template <typename Key, typename Has, typename Prefetch>
std::size_t longest_run(std::size_t most, Key key, Has has, Prefetch prefetch) {
    constexpr std::size_t batch = 4;
    std::array<std::uint64_t, batch> keys{};
    std::size_t l = 0;
    bool open = true;
    while (open && l < most) {
        const std::size_t count = std::min(batch, most - l);
        for (std::size_t i = 0; i < count; ++i) {
            keys[i] = key(l + i + 1);
            prefetch(keys[i]);
        }
        for (std::size_t i = 0; i < count && open; ++i) {
            open = has(keys[i]);
            l += open ? 1 : 0;
        }
    }
    wipe(keys.data(), sizeof(keys));
    return l;
}

}  // namespace

// The longest text_[begin, begin + l) that begins a term (or seems to: the filter may say
// yes wrongly, which only makes it longer). Every beginning of a beginning is one, so the
// walk stops at the first miss.
std::size_t banned_list::window_finder::longest_term_prefix(std::size_t begin) const {
    return longest_run(
        std::min(text_.size() - begin, list_.longest_),
        [&](std::size_t l) {
            return affix_key(range_hash(prefix_, begin, begin + l), l, affix::prefix);
        },
        [&](std::uint64_t key) { return list_.has_affix(key); },
        [&](std::uint64_t key) { __builtin_prefetch(list_.affix_block_of(key)); });
}

std::size_t banned_list::window_finder::longest_term_suffix(std::size_t end) const {
    if (suffix_[end] < 0) {
        suffix_[end] = static_cast<std::int16_t>(longest_run(
            std::min(end, list_.longest_),
            [&](std::size_t l) {
                return affix_key(range_hash(prefix_, end - l, end), l, affix::suffix);
            },
            [&](std::uint64_t key) { return list_.has_affix(key); },
            [&](std::uint64_t key) { __builtin_prefetch(list_.affix_block_of(key)); }));
    }
    return static_cast<std::size_t>(suffix_[end]);
}

banned_list::window_finder::~window_finder() {
    wipe(prefix_.data(), prefix_.size() * sizeof(std::uint64_t));
}

// The lookups are issued ahead of use: the tags at a lookup's first slot are prefetched when
// it is queued and scanned pipeline_depth lookups later, so that the memory accesses of
// several lookups overlap instead of waiting one after the other.
void banned_list::window_finder::ends_from(std::size_t begin, std::size_t min_end,
                                           std::span<const std::size_t> reached, std::size_t points,
                                           std::vector<std::uint32_t>& ends) const {
    ends.clear();
    const std::size_t n = text_.size();
    if (list_.empty() || begin >= n) {
        return;
    }
    const std::size_t shortest =
        std::max(min_term_length - 1, min_end > begin ? min_end - begin : 0);
    const std::size_t longest = std::min(n - begin, list_.longest_ + 1);
    const std::size_t term_prefix = longest_term_prefix(begin);
    std::array<lookup, pipeline_depth> queue{};
    std::size_t queued = 0;
    const auto complete = [&](const lookup& l) {
        const std::uint32_t end = l.begin + l.length;
        if ((ends.empty() || ends.back() != end) && list_.scan(l, text_, true)) {
            ends.push_back(end);
        }
    };
    for (std::size_t length = shortest; length <= longest; ++length) {
        if (!reached.empty() && reached[begin + length] <= points) {
            continue;
        }
        // Around the edit, the window is a beginning and an end of terms: P + S >= length
        // for its own key (equal to a term, or a term without one code point), and a
        // deletion at j needs j <= P and length - 1 - j <= S.
        const std::size_t suffix = longest_term_suffix(begin + length);
        if (term_prefix + suffix + 1 < length) {
            continue;
        }
        const bool whole = term_prefix + suffix >= length;
        const std::size_t first_deletion = length - 1 > suffix ? length - 1 - suffix : 0;
        list_.window_lookups(prefix_, begin, length, whole, first_deletion, term_prefix,
                             [&](const lookup& l) {
                                 __builtin_prefetch(&list_.tags_[list_.first_slot(l.key)]);
                                 auto& slot = queue[queued % pipeline_depth];
                                 if (queued >= pipeline_depth) {
                                     complete(slot);
                                 }
                                 slot = l;
                                 ++queued;
                             });
    }
    for (std::size_t i = queued > pipeline_depth ? queued - pipeline_depth : 0; i < queued; ++i) {
        complete(queue[i % pipeline_depth]);
    }
    wipe(queue.data(), sizeof(queue));
}

namespace {

bool is_ascii_digit(char32_t c) {
    return c >= U'0' && c <= U'9';
}

bool is_ascii_lower(char32_t c) {
    return c >= U'a' && c <= U'z';
}

bool in_sequence(char32_t a, char32_t b, int direction) {
    const bool same_kind =
        (is_ascii_digit(a) && is_ascii_digit(b)) || (is_ascii_lower(a) && is_ascii_lower(b));
    return same_kind && (direction > 0 ? b == a + 1 : a == b + 1);
}

// One row of keys each, left to right; the Nordic letters sit at the right end of theirs.
constexpr std::array<std::u32string_view, 4> keyboard_rows{
    U"1234567890",
    U"qwertyuiop\u00E5",
    U"asdfghjkl\u00F6\u00E4",
    U"zxcvbnm",
};

struct key_place {
    int row = -1;
    int column = 0;
};

key_place place_of(char32_t c) {
    static const auto places = [] {
        std::array<key_place, 256> p{};
        for (std::size_t r = 0; r < keyboard_rows.size(); ++r) {
            for (std::size_t k = 0; k < keyboard_rows[r].size(); ++k) {
                p[keyboard_rows[r][k]] = {static_cast<int>(r), static_cast<int>(k)};
            }
        }
        return p;
    }();
    return c < places.size() ? places[c] : key_place{};
}

template <typename Continues>
void add_runs(std::span<const char32_t> text, Continues continues, std::vector<text_span>& out) {
    std::size_t start = 0;
    for (std::size_t i = 1; i <= text.size(); ++i) {
        if (i < text.size() && continues(text[i - 1], text[i])) {
            continue;
        }
        if (i - start >= min_run) {
            out.push_back({static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(i)});
        }
        start = i;
    }
}

}  // namespace

std::vector<text_span> find_runs(std::span<const char32_t> folded,
                                 std::span<const char32_t> normalized) {
    std::vector<text_span> runs;
    add_runs(
        normalized, [](char32_t a, char32_t b) { return a == b; }, runs);
    for (const int direction : {1, -1}) {
        add_runs(
            folded, [direction](char32_t a, char32_t b) { return in_sequence(a, b, direction); },
            runs);
        add_runs(
            folded,
            [direction](char32_t a, char32_t b) {
                const auto pa = place_of(a);
                const auto pb = place_of(b);
                return pa.row >= 0 && pa.row == pb.row && pb.column == pa.column + direction;
            },
            runs);
    }
    std::sort(runs.begin(), runs.end());
    runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
    return runs;
}

std::size_t entra_score(std::size_t length, std::span<const text_span> terms,
                        std::span<const text_span> runs) {
    std::vector<text_span> by_end(terms.begin(), terms.end());
    std::sort(by_end.begin(), by_end.end(),
              [](const text_span& a, const text_span& b) { return a.end < b.end; });
    std::vector<text_span> by_begin;
    for (const auto& r : runs) {
        if (r.end <= length && r.begin + min_run <= r.end) {
            by_begin.push_back(r);
        }
    }
    std::sort(by_begin.begin(), by_begin.end());

    struct active_run {
        std::size_t end;
        std::size_t best_start;  // lowest best[i] over the starts seen so far
    };
    std::vector<active_run> active;
    std::vector<std::size_t> best(length + 1, 0);
    std::size_t next_term = 0;
    std::size_t next_run = 0;
    for (std::size_t j = 1; j <= length; ++j) {
        std::size_t b = best[j - 1] + 1;
        for (; next_term < by_end.size() && by_end[next_term].end <= j; ++next_term) {
            const auto& t = by_end[next_term];
            if (t.end == j && t.begin < t.end) {
                b = std::min(b, best[t.begin] + 1);
            }
        }
        for (; next_run < by_begin.size() && by_begin[next_run].begin + min_run <= j; ++next_run) {
            active.push_back({by_begin[next_run].end, std::numeric_limits<std::size_t>::max()});
        }
        for (auto& r : active) {
            r.best_start = std::min(r.best_start, best[j - min_run]);
            b = std::min(b, r.best_start + 1);
        }
        std::erase_if(active, [j](const active_run& r) { return r.end <= j; });
        best[j] = b;
    }
    return best[length];
}

banned_verdict evaluate_banned(const banned_list* list, std::span<const char32_t> folded,
                               std::span<const char32_t> normalized, std::size_t threshold) {
    const std::size_t n = normalized.size();
    const auto runs = find_runs(folded, normalized);
    const bool terms = list != nullptr && !list->empty();

    // outside[q]: characters of [q, n) in no run; each costs a point, or shares one with at
    // most longest_term() others in a term window.
    std::vector<std::size_t> outside(n + 1, 0);
    {
        std::vector<bool> in_run(n, false);
        for (const auto& r : runs) {
            std::fill(in_run.begin() + r.begin, in_run.begin() + r.end, true);
        }
        for (std::size_t q = n; q > 0; --q) {
            outside[q - 1] = outside[q] + (in_run[q - 1] ? 0U : 1U);
        }
    }
    const std::size_t per_point = terms ? list->longest_term() + 1 : 1;
    const auto lower_bound = [&](std::size_t q) {
        return (outside[q] + per_point - 1) / per_point;
    };

    constexpr std::size_t unreached = std::numeric_limits<std::size_t>::max();
    std::vector<std::size_t> best(n + 1, unreached);
    best[0] = 0;
    const auto reach = [&best](std::size_t q, std::size_t points) {
        best[q] = std::min(best[q], points);
    };
    std::optional<banned_list::window_finder> finder;
    if (terms) {
        finder.emplace(*list, normalized);
    }
    std::vector<std::uint32_t> ends;
    for (std::size_t p = 0; p < n; ++p) {
        const std::size_t spent = best[p];
        if (spent == unreached || spent + lower_bound(p) >= threshold) {
            continue;
        }
        reach(p + 1, spent + 1);
        for (const auto& r : runs) {
            if (r.begin <= p && p + min_run <= r.end) {
                for (std::size_t q = p + min_run; q <= r.end; ++q) {
                    reach(q, spent + 1);
                }
            }
        }
        if (finder && spent + 1 < threshold) {
            std::size_t min_end = p + 1;
            while (min_end <= n && spent + 1 + lower_bound(min_end) >= threshold) {
                ++min_end;
            }
            if (min_end <= n) {
                finder->ends_from(p, min_end, best, spent + 1, ends);
                for (const auto end : ends) {
                    reach(end, spent + 1);
                }
            }
        }
    }
    const std::size_t score = best[n];
    // Below n points, some term or run covered several characters for one.
    if (score < threshold && score < n) {
        return {.refused = true, .score = score};
    }
    return {.refused = false, .score = std::min(score, threshold)};
}

}  // namespace pwresetd::policy
