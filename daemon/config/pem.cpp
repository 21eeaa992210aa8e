// The PEM files of the configuration, checked when it is loaded (--check-config and reload
// report them with their position, not at the first handshake): certificates that parse and
// are valid now, a private key that parses and matches its certificate. A key's bytes never
// reach a message.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>

#include "daemon/config/files.hpp"
#include "daemon/config/reader.hpp"

namespace pwresetd::daemon::config_detail {
namespace {

namespace fs = std::filesystem;

struct bio_free {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

constexpr int expiry_warning_days = 30;

bio_ptr memory_bio(const std::string& text) {
    return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string subject_of(const X509* cert) {
    char buffer[256] = {};
    X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof buffer);
    return buffer;
}

std::string date_of(const ASN1_TIME* t) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) {
        return "?";
    }
    char buffer[32] = {};
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M UTC", &tm);
    return buffer;
}

// Every certificate of a PEM text; empty when none parses.
std::vector<x509_ptr> certificates_in(const std::string& text) {
    std::vector<x509_ptr> out;
    const auto bio = memory_bio(text);
    while (bio) {
        x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert) {
            break;
        }
        out.push_back(std::move(cert));
    }
    ERR_clear_error();  // the end of the text reads as an error
    return out;
}

}  // namespace

std::optional<fs::path> config_reader::read_certificates_file(const field& f) const {
    auto path = read_readable_file(f);
    if (!path) {
        return path;
    }
    std::string why;
    const auto text = read_text_file(*path, why);
    if (!text) {
        return path;  // reported by read_readable_file
    }
    const auto certs = certificates_in(*text);
    if (certs.empty()) {
        r.error(f.key_mark, f.path, path->string() + " holds no PEM certificate");
        return path;
    }
    const std::time_t now = std::time(nullptr);
    for (const auto& cert : certs) {
        const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
        const ASN1_TIME* not_before = X509_get0_notBefore(cert.get());
        if (X509_cmp_time(not_after, nullptr) < 0) {
            r.error(f.key_mark, f.path,
                    "certificate " + subject_of(cert.get()) + " in " + path->string() +
                        " expired on " + date_of(not_after));
        } else if (X509_cmp_time(not_before, nullptr) > 0) {
            r.error(f.key_mark, f.path,
                    "certificate " + subject_of(cert.get()) + " in " + path->string() +
                        " is not valid before " + date_of(not_before));
        } else {
            std::time_t soon = now + static_cast<std::time_t>(expiry_warning_days) * 86400;
            if (X509_cmp_time(not_after, &soon) < 0) {
                r.warning(f.key_mark, f.path,
                          "certificate " + subject_of(cert.get()) + " in " + path->string() +
                              " expires on " + date_of(not_after));
            }
        }
    }
    return path;
}

std::optional<fs::path> config_reader::read_private_key_file(const field& f) const {
    auto path = read_readable_file(f);
    if (!path) {
        return path;
    }
    std::string why;
    auto text = read_text_file(*path, why);
    if (!text) {
        return path;
    }
    const auto bio = memory_bio(*text);
    const pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                           : nullptr);
    ERR_clear_error();
    OPENSSL_cleanse(text->data(), text->size());
    if (!key) {
        r.error(f.key_mark, f.path,
                path->string() + " holds no PEM private key (or one protected by a passphrase)");
    }
    return path;
}

void config_reader::check_key_pair(const fs::path& certificate, const field& key_field,
                                   const fs::path& key) const {
    std::string why;
    const auto cert_text = read_text_file(certificate, why);
    auto key_text = read_text_file(key, why);
    if (!cert_text || !key_text) {
        return;
    }
    const auto certs = certificates_in(*cert_text);
    const auto bio = memory_bio(*key_text);
    const pkey_ptr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                            : nullptr);
    OPENSSL_cleanse(key_text->data(), key_text->size());
    if (certs.empty() || !pkey) {
        ERR_clear_error();
        return;  // reported by the readers
    }
    if (X509_check_private_key(certs.front().get(), pkey.get()) != 1) {
        r.error(key_field.key_mark, key_field.path,
                key.string() + " does not match the certificate " +
                    subject_of(certs.front().get()) + " in " + certificate.string());
    }
    ERR_clear_error();
}

}  // namespace pwresetd::daemon::config_detail
