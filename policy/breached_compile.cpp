// Compiling "SHA1HEX[:count]" lines into a breached-password set (layout:
// breached_format.hpp) in bounded memory, reading the input once (it may be a pipe).
//
// 1. Parse: each line's hash becomes h, its first 64 bits. Values collect in one buffer
//    sized from the memory budget; when it is full it is sorted, deduplicated and spilled
//    to an unlinked temporary file (a sorted run).
// 2. Without spills the buffer is the set. Otherwise the last buffer is spilled too, its
//    memory freed, and the runs are merged (at most merge_fan_in at a time, so the number
//    of open files and read buffers stays bounded): one merge pass counts the distinct
//    values n, which the range reduction needs; a second one feeds the encoder.
// 3. Encode into a temporary file next to the output (index and payload written
//    sequentially at their own offsets, checksummed on the way), write the header, fsync,
//    chmod 0644, rename over the output, fsync the folder.
// The output depends only on the set of distinct h, never on input order or duplicates.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "policy/breached_format.hpp"
#include "policy/breached_io.hpp"
#include "policy/breached_set.hpp"

namespace pwresetd::policy {

namespace {

namespace fmt = breached_format;
using breached_io::unique_fd;

constexpr std::size_t input_chunk = std::size_t{1} << 20;
constexpr std::size_t max_line = 4096;
constexpr std::size_t merge_fan_in = 64;
constexpr std::uint64_t min_run_values = 1024;
constexpr std::size_t write_buffer = std::size_t{1} << 20;

std::string malformed_message(std::uint64_t line) {
    return "line " + std::to_string(line) + ": expected 40 hex digits, then ':' and a count";
}

constexpr std::array<unsigned char, 256> make_hex_table() {
    std::array<unsigned char, 256> t{};
    t.fill(0xFF);
    for (unsigned c = 0; c < 10; ++c) {
        t['0' + c] = static_cast<unsigned char>(c);
    }
    for (unsigned c = 0; c < 6; ++c) {
        t['a' + c] = static_cast<unsigned char>(10 + c);
        t['A' + c] = static_cast<unsigned char>(10 + c);
    }
    return t;
}
constexpr auto hex_table = make_hex_table();

// The first 64 bits of the hash on a well-formed line; false when the line is malformed.
bool parse_line(const char* p, std::size_t len, std::uint64_t& h) {
    if (len < 40 || (len > 40 && (p[40] != ':' || len == 41))) {
        return false;
    }
    unsigned bad = 0;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 16; ++i) {
        const unsigned char d = hex_table[static_cast<unsigned char>(p[i])];
        bad |= d;
        v = (v << 4U) | (d & 0x0FU);
    }
    for (std::size_t i = 16; i < 40; ++i) {
        bad |= hex_table[static_cast<unsigned char>(p[i])];
    }
    if ((bad & 0xF0U) != 0) {
        return false;
    }
    for (std::size_t i = 41; i < len; ++i) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
    }
    h = v;
    return true;
}

bool is_blank(const char* p, std::size_t len) {
    return std::all_of(p, p + len, [](char c) { return c == ' ' || c == '\t'; });
}

std::filesystem::path folder_of(const std::filesystem::path& file) {
    auto parent = file.parent_path();
    return parent.empty() ? std::filesystem::path(".") : parent;
}

// An anonymous file in `dir`, gone when closed.
unique_fd make_spill_file(const std::filesystem::path& dir) {
    std::string name = (dir / "pwresetd-breached-run-XXXXXX").string();
    unique_fd fd(::mkostemp(name.data(), O_CLOEXEC));
    if (!fd) {
        breached_io::throw_errno("cannot create a spill file in " + dir.string());
    }
    ::unlink(name.c_str());
    return fd;
}

// In-place MSD radix sort (American flag sort), a byte per level; about twice as fast as
// std::sort on the uniform values this sorts, without extra memory.
void radix_sort(std::uint64_t* first, std::uint64_t* last, unsigned shift) {
    const auto n = static_cast<std::size_t>(last - first);
    if (n < 2048) {
        std::sort(first, last);
        return;
    }
    const auto digit = [shift](std::uint64_t v) {
        return static_cast<std::size_t>((v >> shift) & 0xFFU);
    };
    std::array<std::size_t, 257> bounds{};
    for (const std::uint64_t* p = first; p != last; ++p) {
        ++bounds[digit(*p) + 1];
    }
    for (std::size_t d = 1; d < bounds.size(); ++d) {
        bounds[d] += bounds[d - 1];
    }
    std::array<std::size_t, 256> next{};
    std::copy(bounds.begin(), bounds.end() - 1, next.begin());
    for (std::size_t d = 0; d < 256; ++d) {
        while (next[d] < bounds[d + 1]) {
            std::uint64_t v = first[next[d]];
            for (std::size_t home = digit(v); home != d; home = digit(v)) {
                std::swap(v, first[next[home]++]);
            }
            first[next[d]++] = v;
        }
    }
    if (shift == 0) {
        return;
    }
    for (std::size_t d = 0; d < 256; ++d) {
        radix_sort(first + bounds[d], first + bounds[d + 1], shift - 8);
    }
}

void sort_unique(std::vector<std::uint64_t>& values) {
    radix_sort(values.data(), values.data() + values.size(), 56);
    values.erase(std::unique(values.begin(), values.end()), values.end());
}

struct run_file {
    unique_fd fd;
    std::uint64_t count = 0;
};

// Sequential positional writes through a buffer, hashing what goes out.
class checksummed_writer {
public:
    checksummed_writer(int fd, std::uint64_t offset) : fd_(fd), offset_(offset) {
        buffer_.reserve(write_buffer);
    }
    void put_u64(std::uint64_t v) {
        std::array<unsigned char, 8> bytes{};
        fmt::store_le64(bytes.data(), v);
        buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
        if (buffer_.size() >= write_buffer) {
            flush();
        }
    }
    void flush() {
        hash_.update(buffer_);
        breached_io::pwrite_all(fd_, buffer_.data(), buffer_.size(), offset_, "write");
        offset_ += buffer_.size();
        buffer_.clear();
    }
    [[nodiscard]] std::uint64_t checksum() const noexcept { return hash_.digest(); }
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

private:
    int fd_;
    std::uint64_t offset_;
    std::vector<unsigned char> buffer_;
    fmt::xxh64 hash_;
};

void write_run(const run_file& run, const std::vector<std::uint64_t>& values) {
    checksummed_writer out(run.fd.get(), 0);
    for (const std::uint64_t v : values) {
        out.put_u64(v);
    }
    out.flush();
}

class run_reader {
public:
    run_reader(const run_file& run, std::size_t buffer_values)
        : fd_(run.fd.get()), left_(run.count), buffer_(buffer_values) {}
    // False at the end of the run.
    bool next(std::uint64_t& v) {
        if (pos_ == filled_) {
            if (left_ == 0) {
                return false;
            }
            filled_ = static_cast<std::size_t>(std::min<std::uint64_t>(left_, buffer_.size()));
            breached_io::pread_all(fd_, buffer_.data(), filled_ * 8, offset_,
                                   "read from a spill file");
            offset_ += filled_ * 8;
            left_ -= filled_;
            pos_ = 0;
        }
        v = fmt::load_le64(reinterpret_cast<const unsigned char*>(&buffer_[pos_++]));
        return true;
    }

private:
    int fd_;
    std::uint64_t left_;
    std::uint64_t offset_ = 0;
    std::vector<std::uint64_t> buffer_;
    std::size_t pos_ = 0;
    std::size_t filled_ = 0;
};

// Streams the distinct values of several sorted runs in order.
class run_merger {
public:
    run_merger(const std::vector<run_file>& runs, std::size_t first, std::size_t count,
               std::size_t buffer_values) {
        readers_.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            readers_.emplace_back(runs[first + i], buffer_values);
            std::uint64_t v = 0;
            if (readers_.back().next(v)) {
                heap_.push({v, i});
            }
        }
    }
    bool next(std::uint64_t& out) {
        while (!heap_.empty()) {
            const auto [v, i] = heap_.top();
            heap_.pop();
            std::uint64_t following = 0;
            if (readers_[i].next(following)) {
                heap_.push({following, i});
            }
            if (!has_last_ || v != last_) {
                has_last_ = true;
                last_ = v;
                out = v;
                return true;
            }
        }
        return false;
    }

private:
    using item = std::pair<std::uint64_t, std::size_t>;
    std::vector<run_reader> readers_;
    std::priority_queue<item, std::vector<item>, std::greater<>> heap_;
    bool has_last_ = false;
    std::uint64_t last_ = 0;
};

// Sorted distinct values in, index and payload out (to their offsets in `fd`).
class set_encoder {
public:
    set_encoder(int fd, std::uint64_t hash_count)
        : hash_count_(hash_count),
          range_(hash_count << fmt::rice_bits),
          block_count_((hash_count + (std::uint64_t{1} << fmt::block_shift) - 1) >>
                       fmt::block_shift),
          index_(fd, fmt::header_size),
          payload_(fd, fmt::header_size + (block_count_ + 1) * 8) {}

    void add(std::uint64_t h) {
        const std::uint64_t v = fmt::reduce(h, range_);
        if (entries_ > 0 && v == previous_) {
            return;
        }
        const std::uint64_t block = v >> block_bits;
        std::uint64_t base = previous_;
        if (entries_ == 0 || block != next_block_ - 1) {
            for (; next_block_ <= block; ++next_block_) {
                index_.put_u64(bits_);
            }
            base = block << block_bits;
        }
        put_rice(v - base);
        previous_ = v;
        ++entries_;
    }

    // Completes the body and returns the header.
    std::array<unsigned char, fmt::header_size> finish() {
        for (; next_block_ <= block_count_; ++next_block_) {
            index_.put_u64(bits_);
        }
        const std::uint64_t payload_bits = bits_;
        if (pending_bits_ > 0) {
            payload_.put_u64(pending_);
        }
        payload_.put_u64(0);
        index_.flush();
        payload_.flush();

        std::array<unsigned char, fmt::header_size> header{};
        std::memcpy(header.data(), fmt::magic.data(), fmt::magic.size());
        fmt::store_le32(header.data() + fmt::offset::version, fmt::version);
        header[fmt::offset::rice_bits] = fmt::rice_bits;
        header[fmt::offset::block_shift] = fmt::block_shift;
        fmt::store_le64(header.data() + fmt::offset::hash_count, hash_count_);
        fmt::store_le64(header.data() + fmt::offset::entry_count, entries_);
        fmt::store_le64(header.data() + fmt::offset::block_count, block_count_);
        fmt::store_le64(header.data() + fmt::offset::payload_bits, payload_bits);
        fmt::store_le64(header.data() + fmt::offset::index_checksum, index_.checksum());
        fmt::store_le64(header.data() + fmt::offset::payload_checksum, payload_.checksum());
        fmt::store_le64(header.data() + fmt::offset::header_checksum,
                        fmt::xxh64_of({header.data(), fmt::header_checksummed}));
        return header;
    }

    [[nodiscard]] std::uint64_t file_size() const noexcept { return payload_.offset(); }

private:
    static constexpr unsigned block_bits = fmt::rice_bits + fmt::block_shift;

    void put_bits(std::uint64_t bits, unsigned count) {
        pending_ |= bits << pending_bits_;
        if (pending_bits_ + count >= 64) {
            payload_.put_u64(pending_);
            pending_ = pending_bits_ == 0 ? 0 : bits >> (64 - pending_bits_);
            pending_bits_ = pending_bits_ + count - 64;
        } else {
            pending_bits_ += count;
        }
        bits_ += count;
    }

    void put_rice(std::uint64_t gap) {
        std::uint64_t quotient = gap >> fmt::rice_bits;
        for (; quotient >= 32; quotient -= 32) {
            put_bits(0, 32);
        }
        const auto q = static_cast<unsigned>(quotient);
        put_bits(std::uint64_t{1} << q, q + 1);
        put_bits(gap & ((std::uint64_t{1} << fmt::rice_bits) - 1), fmt::rice_bits);
    }

    std::uint64_t hash_count_;
    std::uint64_t range_;
    std::uint64_t block_count_;
    checksummed_writer index_;
    checksummed_writer payload_;
    std::uint64_t next_block_ = 0;
    std::uint64_t previous_ = 0;
    std::uint64_t entries_ = 0;
    std::uint64_t bits_ = 0;
    std::uint64_t pending_ = 0;
    unsigned pending_bits_ = 0;
};

// The output's temporary file: removed unless committed.
class pending_output {
public:
    explicit pending_output(const std::filesystem::path& output) : output_(output) {
        std::string name =
            (folder_of(output) / (output.filename().string() + ".tmp-XXXXXX")).string();
        fd_ = unique_fd(::mkostemp(name.data(), O_CLOEXEC));
        if (!fd_) {
            breached_io::throw_errno("cannot create a temporary file next to " + output.string());
        }
        temp_ = name;
    }
    pending_output(const pending_output&) = delete;
    pending_output& operator=(const pending_output&) = delete;
    ~pending_output() {
        if (!committed_) {
            ::unlink(temp_.c_str());
        }
    }

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    void commit() {
        if (::fchmod(fd_.get(), 0644) != 0) {
            breached_io::throw_errno("chmod " + temp_.string());
        }
        if (::fsync(fd_.get()) != 0) {
            breached_io::throw_errno("fsync " + temp_.string());
        }
        fd_.reset();
        if (::rename(temp_.c_str(), output_.c_str()) != 0) {
            breached_io::throw_errno("rename " + temp_.string() + " to " + output_.string());
        }
        committed_ = true;
        const unique_fd dir(::open(folder_of(output_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir) {
            ::fsync(dir.get());
        }
    }

private:
    std::filesystem::path output_;
    std::filesystem::path temp_;
    unique_fd fd_;
    bool committed_ = false;
};

class hash_collector {
public:
    hash_collector(std::uint64_t budget_bytes, std::filesystem::path spill_dir)
        : budget_(budget_bytes), spill_dir_(std::move(spill_dir)) {
        const std::uint64_t fixed = input_chunk + max_line + 2 * write_buffer;
        const std::uint64_t for_values = budget_ > fixed ? budget_ - fixed : 0;
        // Growth jumps from at most capacity / 16 straight to the capacity, so the old and
        // the new buffer together never exceed 17/16 of it.
        capacity_ = std::max(min_run_values, for_values / 8 / 17 * 16);
        values_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(capacity_, 4096)));
    }

    void add(std::uint64_t h) {
        if (values_.size() == values_.capacity()) {
            grow_or_spill();
        }
        values_.push_back(h);
    }

    // Calls encode(distinct_count, feed); feed(sink) calls sink(v) for each distinct value
    // in increasing order.
    template <typename Encode>
    void finish(Encode&& encode) {
        if (runs_.empty()) {
            sort_unique(values_);
            encode(values_.size(), [&](auto&& sink) {
                for (const std::uint64_t v : values_) {
                    sink(v);
                }
            });
            return;
        }
        spill();
        values_ = {};
        while (runs_.size() > merge_fan_in) {
            merge_some();
        }
        const std::size_t buffer_values = reader_buffer_values(runs_.size());
        std::uint64_t distinct = 0;
        {
            run_merger merger(runs_, 0, runs_.size(), buffer_values);
            std::uint64_t v = 0;
            while (merger.next(v)) {
                ++distinct;
            }
        }
        encode(distinct, [&](auto&& sink) {
            run_merger merger(runs_, 0, runs_.size(), buffer_values);
            std::uint64_t v = 0;
            while (merger.next(v)) {
                sink(v);
            }
        });
    }

private:
    void grow_or_spill() {
        const std::size_t cap = values_.capacity();
        if (cap < capacity_) {
            const std::uint64_t doubled = std::uint64_t{cap} * 2;
            values_.reserve(
                static_cast<std::size_t>(doubled <= capacity_ / 16 ? doubled : capacity_));
            return;
        }
        spill();
    }

    void spill() {
        sort_unique(values_);
        run_file run{make_spill_file(spill_dir_), values_.size()};
        write_run(run, values_);
        runs_.push_back(std::move(run));
        values_.clear();
    }

    [[nodiscard]] std::size_t reader_buffer_values(std::size_t readers) const {
        const std::uint64_t share = budget_ / (readers + 1) / 8;
        return static_cast<std::size_t>(
            std::clamp<std::uint64_t>(share, 512, std::uint64_t{1} << 17));
    }

    // Replaces the first merge_fan_in runs by their merge.
    void merge_some() {
        run_file merged{make_spill_file(spill_dir_), 0};
        {
            run_merger merger(runs_, 0, merge_fan_in, reader_buffer_values(merge_fan_in));
            checksummed_writer out(merged.fd.get(), 0);
            std::uint64_t v = 0;
            while (merger.next(v)) {
                out.put_u64(v);
                ++merged.count;
            }
            out.flush();
        }
        runs_.erase(runs_.begin(), runs_.begin() + merge_fan_in);
        runs_.push_back(std::move(merged));
    }

    std::uint64_t budget_;
    std::filesystem::path spill_dir_;
    std::uint64_t capacity_;
    std::vector<std::uint64_t> values_;
    std::vector<run_file> runs_;
};

class line_reader {
public:
    line_reader(const compile_options& options, compile_stats& stats)
        : options_(options), stats_(stats) {}

    template <typename Sink>
    void read(std::istream& input, Sink&& sink) {
        std::vector<char> buffer(input_chunk + max_line);
        std::size_t carried = 0;
        bool skipping_long_line = false;
        for (;;) {
            input.read(buffer.data() + carried, static_cast<std::streamsize>(input_chunk));
            const auto got = static_cast<std::size_t>(input.gcount());
            if (input.bad()) {
                throw std::runtime_error("read error on the input");
            }
            const std::size_t filled = carried + got;
            std::size_t start = 0;
            if (skipping_long_line) {
                const void* nl = std::memchr(buffer.data(), '\n', filled);
                if (nl == nullptr) {
                    carried = 0;
                    if (got == 0) {
                        break;
                    }
                    continue;
                }
                start = static_cast<std::size_t>(static_cast<const char*>(nl) - buffer.data()) + 1;
                skipping_long_line = false;
            }
            for (;;) {
                const void* nl = std::memchr(buffer.data() + start, '\n', filled - start);
                if (nl == nullptr) {
                    break;
                }
                const auto end =
                    static_cast<std::size_t>(static_cast<const char*>(nl) - buffer.data());
                line(buffer.data() + start, end - start, sink);
                start = end + 1;
            }
            if (got == 0) {
                if (start < filled) {
                    line(buffer.data() + start, filled - start, sink);
                }
                break;
            }
            carried = filled - start;
            if (carried > max_line) {
                ++stats_.lines;
                bad_line();
                skipping_long_line = true;
                carried = 0;
            } else {
                std::memmove(buffer.data(), buffer.data() + start, carried);
            }
        }
    }

private:
    template <typename Sink>
    void line(const char* p, std::size_t len, Sink& sink) {
        ++stats_.lines;
        if (len > 0 && p[len - 1] == '\r') {
            --len;
        }
        std::uint64_t h = 0;
        if (parse_line(p, len, h)) {
            sink(h);
        } else if (!is_blank(p, len)) {
            bad_line();
        }
    }

    void bad_line() {
        if (!options_.skip_bad) {
            throw compile_error(malformed_message(stats_.lines), stats_.lines);
        }
        ++stats_.skipped;
    }

    const compile_options& options_;
    compile_stats& stats_;
};

}  // namespace

compile_stats compile_breached_set(std::istream& input, const std::filesystem::path& output,
                                   const compile_options& options) {
    compile_stats stats;
    const std::filesystem::path spill_dir =
        options.temp_dir.empty() ? folder_of(output) : options.temp_dir;
    hash_collector collector(options.memory_budget_bytes, spill_dir);
    line_reader reader(options, stats);
    reader.read(input, [&](std::uint64_t h) { collector.add(h); });

    pending_output out(output);
    collector.finish([&](std::uint64_t distinct, auto&& feed) {
        stats.hashes = distinct;
        set_encoder encoder(out.fd(), distinct);
        feed([&](std::uint64_t v) { encoder.add(v); });
        const auto header = encoder.finish();
        breached_io::pwrite_all(out.fd(), header.data(), header.size(), 0, "write");
        stats.output_bytes = encoder.file_size();
    });
    out.commit();
    return stats;
}

}  // namespace pwresetd::policy
