#include "daemon/ctl/doctor.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.hpp"
#include "common/log.hpp"
#include "daemon/config.hpp"
#include "ldap/ad_security.hpp"
#include "ldap/directory.hpp"
#include "ldap/probe_session.hpp"

namespace pwresetd::ctl {
namespace {

namespace json = boost::json;
using ldap::probe_entry;
using ldap::probe_reply;
using ldap::probe_scope;
using ldap::probe_session;
namespace rc = ldap::result_code;

constexpr int exit_ok = 0;
constexpr int exit_problem = 1;
constexpr int exit_usage = 2;
constexpr int certificate_warning_days = 30;

enum class status { ok, warning, problem };

std::string_view status_name(status s) {
    switch (s) {
        case status::ok:
            return "ok";
        case status::warning:
            return "warning";
        case status::problem:
            break;
    }
    return "problem";
}

struct check {
    std::string name;     // connect, certificate, bind, sample_user, write, read, reset_right...
    std::string subject;  // the attribute, group DN, ... ("" when none)
    status result = status::ok;
    std::string detail;
    std::vector<std::string> grant;  // commands that would grant what is missing
    json::object certificate;        // subject, issuer, not_after, days_left (certificate)
};

struct server_report {
    std::string uri;
    std::vector<check> checks;
};

struct directory_report {
    const ldap::directory_settings* settings = nullptr;
    std::vector<server_report> servers;
};

std::string describe(const probe_reply& r) {
    std::string out = "result " + std::to_string(r.result) + " (" + r.error + ")";
    if (!r.text.empty()) {
        out += ": " + r.text;
    }
    return out;
}

std::string random_hex() {
    std::array<unsigned char, 12> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed");
    }
    return crypto::hex_encode(bytes);
}

bool contains_ci(const std::vector<std::string>& values, std::string_view wanted) {
    for (const auto& v : values) {
        if (v.size() == wanted.size() &&
            std::equal(v.begin(), v.end(), wanted.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) ==
                       std::tolower(static_cast<unsigned char>(b));
            })) {
            return true;
        }
    }
    return false;
}

// ---- the server certificate --------------------------------------------------------------

struct x509_deleter {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
struct bio_deleter {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};

std::string name_text(const X509_NAME* name) {
    const std::unique_ptr<BIO, bio_deleter> bio(BIO_new(BIO_s_mem()));
    if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) {
        return {};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

check certificate_check(const std::string& der) {
    check c{"certificate", "", status::ok, "", {}, {}};
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    const std::unique_ptr<X509, x509_deleter> cert(
        der.empty() ? nullptr : d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) {
        c.result = status::warning;
        c.detail = "the server's certificate could not be read back from the TLS session";
        return c;
    }
    const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
    std::tm tm{};
    int days = 0;
    int seconds = 0;
    std::array<char, 32> when{};
    if (ASN1_TIME_to_tm(not_after, &tm) == 1) {
        std::strftime(when.data(), when.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    ASN1_TIME_diff(&days, &seconds, nullptr, not_after);
    const std::string subject = name_text(X509_get_subject_name(cert.get()));
    const std::string issuer = name_text(X509_get_issuer_name(cert.get()));
    c.certificate["subject"] = subject;
    c.certificate["issuer"] = issuer;
    c.certificate["not_after"] = when.data();
    c.certificate["days_left"] = days;
    c.detail = "subject \"" + subject + "\", issuer \"" + issuer + "\", expires " + when.data() +
               " (" + std::to_string(days) + " days left)";
    if (days < certificate_warning_days) {
        c.result = status::warning;
        c.detail +=
            "; expires in under " + std::to_string(certificate_warning_days) + " days: renew it";
    }
    return c;
}

// ---- one server ---------------------------------------------------------------------------

class server_doctor {
public:
    server_doctor(const daemon::config& cfg, const ldap::directory_settings& s,
                  const std::optional<std::string>& user, server_report& out)
        : cfg_(cfg), s_(s), user_(user), out_(out) {}

    void run() {
        probe_session::open_failure failure;
        session_ = probe_session::open(s_, out_.uri, failure);
        if (!session_) {
            std::string detail = failure.stage + " failed: " + failure.error;
            if (!failure.diagnostic.empty()) {
                detail += " (" + failure.diagnostic + ")";
            }
            if (!failure.hint.empty()) {
                detail += "; " + failure.hint;
            }
            add("connect", "", status::problem, detail);
            return;
        }
        add("connect", "", status::ok,
            std::string(s_.start_tls ? "StartTLS" : "TLS") +
                ", server certificate verified against " + s_.ca_file);
        out_.checks.push_back(certificate_check(session_->peer_certificate()));

        const probe_reply bound = session_->bind_service();
        if (bound.result != rc::success) {
            std::string detail = "as " + s_.bind_dn + ": " + describe(bound);
            if (bound.result == rc::invalid_credentials) {
                detail += "; check bind_dn and the bind password file or credential";
            }
            add("bind", s_.bind_dn, status::problem, detail);
            return;
        }
        add("bind", s_.bind_dn, status::ok, "bound as " + s_.bind_dn);

        const std::optional<probe_entry> sample = find_sample();
        if (!sample) {
            return;
        }
        if (s_.kind == ldap::directory_kind::openldap) {
            openldap_rights(*sample);
        } else {
            ad_rights(*sample);
        }
        groups(*sample);
    }

private:
    check& add(std::string name, std::string subject, status result, std::string detail) {
        out_.checks.push_back(
            {std::move(name), std::move(subject), result, std::move(detail), {}, {}});
        return out_.checks.back();
    }

    [[nodiscard]] bool openldap() const { return s_.kind == ldap::directory_kind::openldap; }

    std::vector<std::string> sample_attributes() const {
        std::vector<std::string> a = {s_.attributes.email, s_.attributes.phone,
                                      s_.attributes.display_name};
        if (openldap()) {
            a.insert(a.end(), {"entryUUID", "pwdAccountLockedTime", "pwdReset"});
        } else {
            a.insert(a.end(), {"objectGUID", "allowedAttributesEffective"});
        }
        return a;
    }

    // --user NAME as the daemon searches it, or the first entry the filter finds with any
    // value ("{username}" -> "*").
    std::optional<probe_entry> find_sample() {
        std::string filter;
        if (user_) {
            filter = ldap::expand_user_filter(s_.user_filter, *user_);
        } else {
            filter = s_.user_filter;
            for (auto at = filter.find("{username}"); at != std::string::npos;
                 at = filter.find("{username}", at + 1)) {
                filter.replace(at, 10, "*");
            }
            if (!openldap() && s_.protect_admin_count) {
                // adminCount=1 accounts carry AdminSDHolder's ACL, not the delegation; the
                // daemon never resets them anyway.
                filter = "(&" + filter + "(!(adminCount=1)))";
            }
        }
        const auto found = session_->search(s_.user_base, probe_scope::subtree, filter,
                                            sample_attributes(), user_ ? 2 : 1);
        const bool partial =
            found.reply.result == rc::size_limit_exceeded && !found.entries.empty();
        if (found.reply.result != rc::success && !partial) {
            check& c =
                add("sample_user", "", status::problem,
                    "search of " + s_.user_base + " with " + filter + ": " + describe(found.reply));
            if (found.reply.result == rc::no_such_object ||
                found.reply.result == rc::insufficient_access) {
                grant_read_entries(c);
            }
            return std::nullopt;
        }
        if (found.entries.empty()) {
            check& c = add("sample_user", "", status::problem,
                           user_ ? "no entry for \"" + *user_ + "\" under " + s_.user_base +
                                       " (filter " + filter + ")"
                                 : "no entry under " + s_.user_base + " matches " + filter +
                                       ": the service account may not be allowed to read "
                                       "users; try --user NAME");
            grant_read_entries(c);
            return std::nullopt;
        }
        if (user_ && (found.entries.size() > 1 || partial)) {
            add("sample_user", "", status::problem,
                "\"" + *user_ + "\" matches more than one entry under " + s_.user_base);
            return std::nullopt;
        }
        const probe_entry& e = found.entries.front();
        add("sample_user", e.dn, status::ok, "checking rights on " + e.dn);
        return e;
    }

    void grant_read_entries(check& c) const {
        if (openldap()) {
            c.grant.push_back("olcAccess: {0}to dn.subtree=\"" + s_.user_base +
                              "\" by dn.exact=\"" + s_.bind_dn + "\" read by * break");
        }
    }

    // ---- OpenLDAP ----

    std::string olc_access(std::string_view attribute, std::string_view level) const {
        return "olcAccess: {0}to dn.subtree=\"" + s_.user_base +
               "\" attrs=" + std::string(attribute) + " by dn.exact=\"" + s_.bind_dn + "\" " +
               std::string(level) + " by * break";
    }

    // The write probe: delete a value the entry does not hold. slapd checks the ACL first
    // (insufficientAccess 50), then finds no such value (noSuchAttribute 16); either way
    // nothing is written.
    void write_probe(const probe_entry& e, const std::string& attribute,
                     const std::vector<std::string>& candidates, std::string_view needed_for,
                     std::string_view level) {
        std::optional<std::string> value;
        for (const auto& v : candidates) {
            if (!contains_ci(e.values(attribute), v)) {
                value = v;
                break;
            }
        }
        if (!value) {
            add("write", attribute, status::warning,
                "not probed: the sample entry holds every probe value; try --user NAME");
            return;
        }
        const probe_reply r = session_->delete_absent_value(e.dn, attribute, *value);
        if (r.result == rc::no_such_attribute) {
            add("write", attribute, status::ok,
                "granted (needed for " + std::string(needed_for) +
                    "; a probe delete of an absent value passed the access check and was "
                    "refused with noSuchAttribute, nothing written)");
        } else if (r.result == rc::insufficient_access) {
            check& c = add("write", attribute, status::problem,
                           "missing: the service account cannot write " + attribute +
                               " (needed for " + std::string(needed_for) + ")");
            c.grant.push_back(olc_access(attribute, level));
        } else {
            add("write", attribute, status::problem,
                "could not tell (needed for " + std::string(needed_for) + "): the probe got " +
                    describe(r));
        }
    }

    void openldap_rights(const probe_entry& e) {
        const std::string mode =
            s_.password_write == ldap::password_write_mode::exop ? "exop" : "modify";
        // Values no real entry holds: userPassword values are hashed ({SSHA}...), the
        // others are checked against the entry first.
        write_probe(e, "userPassword", {"{pwresetd-doctor}" + random_hex()},
                    "resets, password_write " + mode, "=w");
        if (s_.unlock_on_reset) {
            // slapd clears pwdFailureTime itself when pwdAccountLockedTime goes; it is
            // NO-USER-MODIFICATION, so there is no right to check for it.
            write_probe(e, "pwdAccountLockedTime", {"19700101000000Z", "19700101000001Z"},
                        "unlock_on_reset", "write");
        }
        if (s_.force_change_at_next_logon) {
            write_probe(e, "pwdReset", {"FALSE", "TRUE"}, "force_change_at_next_logon", "write");
        }
        if (!e.has("entryUUID")) {
            check& c = add("read", "entryUUID", status::problem,
                           "the sample entry came back without entryUUID: lookups fail");
            c.grant.push_back(olc_access("entryUUID", "read"));
        } else {
            add("read", "entryUUID", status::ok, "read");
        }
        read_check(e, s_.attributes.email, cfg_.factors.email.enabled, "factors.email");
        read_check(e, s_.attributes.phone, cfg_.factors.sms.enabled, "factors.sms");
    }

    // Whether the service account reads `attribute` of the sample: a value came back, or
    // a compare says no access (slapd checks compare access before it looks at the value).
    void read_check(const probe_entry& e, const std::string& attribute, bool factor_enabled,
                    std::string_view factor) {
        const std::string use =
            std::string(factor) + (factor_enabled ? " is enabled" : " is disabled");
        if (e.has(attribute)) {
            add("read", attribute, status::ok, "read (the sample has a value; " + use + ")");
            return;
        }
        const status missing = factor_enabled ? status::problem : status::warning;
        const probe_reply r = session_->compare(e.dn, attribute, "pwresetd-doctor-" + random_hex());
        const bool hidden =
            openldap() && (r.result == rc::compare_false || r.result == rc::compare_true);
        if (r.result == rc::insufficient_access || hidden) {
            check& c = add("read", attribute, missing,
                           "missing: the service account cannot read " + attribute + " (" + use +
                               "; compare: " + describe(r) + ")");
            if (openldap()) {
                c.grant.push_back(olc_access(attribute, "read"));
            }
            return;
        }
        add("read", attribute, status::warning,
            "not confirmed: the sample has no " + attribute + " value (" + use +
                "); run with --user NAME of a user who has one");
    }

    // ---- Active Directory ----

    struct account {
        std::string sid;        // binary
        std::string sid_text;   // S-1-5-21-...
        std::string principal;  // userPrincipalName, else sAMAccountName
    };

    std::optional<account> service_account() {
        const auto r = session_->search(s_.bind_dn, probe_scope::base, "(objectClass=*)",
                                        {"objectSid", "userPrincipalName", "sAMAccountName"}, 1);
        if (r.reply.result != rc::success || r.entries.empty() ||
            !r.entries.front().has("objectSid")) {
            add("reset_right", "", status::problem,
                "cannot read the service account's own objectSid: " + describe(r.reply));
            return std::nullopt;
        }
        const probe_entry& e = r.entries.front();
        account a;
        a.sid = e.values("objectSid").front();
        a.sid_text = ldap::sid_to_string(a.sid).value_or("?");
        a.principal = e.has("userPrincipalName") ? e.values("userPrincipalName").front()
                      : e.has("sAMAccountName")  ? e.values("sAMAccountName").front()
                                                 : s_.bind_dn;
        return a;
    }

    std::string samba_tool(std::string_view right, std::string_view object,
                           const account& a) const {
        return "samba-tool dsacl set --objectdn=\"" + s_.user_base + "\" --sddl=\"(OA;CIIO;" +
               std::string(right) + ";" + std::string(object) + ";" +
               std::string(ldap::user_class_guid) + ";" + a.sid_text + ")\"";
    }

    std::string dsacls(std::string_view permission) const {
        return "dsacls \"" + s_.user_base + "\" /I:S /G \"" + principal_ + ":" +
               std::string(permission) + ";user\"";
    }

    void ad_rights(const probe_entry& e) {
        const std::optional<account> a = service_account();
        if (a) {
            principal_ = a->principal;
        }
        const auto& effective = e.values("allowedAttributesEffective");
        const auto attribute_right = [&](const std::string& attribute, std::string_view guid,
                                         std::string_view needed_for) {
            if (contains_ci(effective, attribute)) {
                add("write", attribute, status::ok,
                    "granted (allowedAttributesEffective lists it; needed for " +
                        std::string(needed_for) + ")");
                return;
            }
            check& c = add("write", attribute, status::problem,
                           "missing: allowedAttributesEffective of the sample does not list " +
                               attribute + " (needed for " + std::string(needed_for) + ")");
            if (a) {
                c.grant.push_back(samba_tool("WP", guid, *a));
            }
            c.grant.push_back(dsacls("WP;" + attribute));
        };
        if (a) {
            reset_right(e, *a);
        }
        if (s_.unlock_on_reset) {
            attribute_right("lockoutTime", ldap::lockout_time_guid, "unlock_on_reset");
        }
        if (s_.force_change_at_next_logon) {
            attribute_right("pwdLastSet", ldap::pwd_last_set_guid, "force_change_at_next_logon");
        }
        if (e.has("objectGUID")) {
            add("read", "objectGUID", status::ok, "read");
        } else {
            add("read", "objectGUID", status::problem,
                "the sample entry came back without objectGUID: lookups fail");
        }
        read_check(e, s_.attributes.email, cfg_.factors.email.enabled, "factors.email");
        read_check(e, s_.attributes.phone, cfg_.factors.sms.enabled, "factors.sms");
    }

    // The Reset Password control access right on the sample, read-only: the DACL (SD flags
    // control: an account without rights on owner and SACL may still read it) evaluated
    // against the connection's own token (RootDSE tokenGroups: the account's SID, its
    // groups, and the well-known SIDs such as Everyone and Authenticated Users).
    void reset_right(const probe_entry& e, const account& a) {
        const auto sd = session_->search(e.dn, probe_scope::base, "(objectClass=*)",
                                         {"nTSecurityDescriptor"}, 1, true);
        const auto token =
            session_->search("", probe_scope::base, "(objectClass=*)", {"tokenGroups"}, 1);
        if (sd.reply.result != rc::success || sd.entries.empty() ||
            !sd.entries.front().has("nTSecurityDescriptor")) {
            add("reset_right", "", status::problem,
                "cannot read the sample's nTSecurityDescriptor (DACL): " + describe(sd.reply));
            return;
        }
        std::vector<std::string> sids = {a.sid};
        if (token.reply.result == rc::success && !token.entries.empty()) {
            for (const auto& sid : token.entries.front().values("tokenGroups")) {
                sids.push_back(sid);
            }
        }
        const auto right = ldap::guid_to_bytes(ldap::reset_password_right);
        const auto decision = ldap::control_access(
            sd.entries.front().values("nTSecurityDescriptor").front(), right.value_or(""), sids);
        const std::string what = "Reset Password (" + std::string(ldap::reset_password_right) +
                                 ") for " + a.sid_text + " and its " +
                                 std::to_string(sids.size() - 1) + " token groups";
        switch (decision) {
            case ldap::access_decision::granted:
                add("reset_right", "", status::ok,
                    "granted: the sample's DACL allows " + what +
                        " (a reset writes unicodePwd under this right, not under a write "
                        "property right, so allowedAttributesEffective need not list it)");
                return;
            case ldap::access_decision::malformed:
                add("reset_right", "", status::problem,
                    "the sample's nTSecurityDescriptor could not be parsed");
                return;
            case ldap::access_decision::denied:
            case ldap::access_decision::not_granted:
                break;
        }
        check& c = add(
            "reset_right", "", status::problem,
            std::string(decision == ldap::access_decision::denied ? "missing: a deny ACE refuses "
                                                                  : "missing: no ACE grants ") +
                what + " on the sample (needed for resets)");
        c.grant.push_back(samba_tool("CR", ldap::reset_password_right, a));
        c.grant.push_back(dsacls("CA;Reset Password"));
    }

    // ---- groups ----

    void groups(const probe_entry& e) {
        const auto one_list = [&](const std::vector<std::string>& dns, std::string_view key) {
            if (dns.empty()) {
                return;
            }
            for (const auto& dn : dns) {
                const auto r =
                    session_->search(dn, probe_scope::base, "(objectClass=*)", {"1.1"}, 1);
                if (r.reply.result == rc::success && !r.entries.empty()) {
                    add("group", dn, status::ok, std::string(key) + ": the group exists");
                } else {
                    add("group", dn, status::problem,
                        std::string(key) + ": no such group visible to the service account (" +
                            describe(r.reply) + "); its members are not recognised");
                }
            }
            // The membership search the daemon makes for a found user.
            const std::string escaped = ldap::escape_filter_value(e.dn);
            std::string member_filter = "(|(member=";
            member_filter.append(escaped).append(")(uniqueMember=").append(escaped).append("))");
            probe_reply last;
            if (openldap()) {
                for (const auto& dn : dns) {
                    last = session_->search(dn, probe_scope::base, member_filter, {"1.1"}, 1).reply;
                    if (last.result != rc::success && last.result != rc::no_such_object) {
                        break;
                    }
                }
            } else {
                std::string filter = "(|";
                for (const auto& dn : dns) {
                    filter +=
                        "(memberOf:1.2.840.113556.1.4.1941:=" + ldap::escape_filter_value(dn) + ")";
                }
                last = session_->search(e.dn, probe_scope::base, filter + ")", {"1.1"}, 1).reply;
            }
            if (last.result == rc::success || last.result == rc::no_such_object) {
                add("group_search", std::string(key), status::ok,
                    "the membership search for the sample answers");
            } else {
                add("group_search", std::string(key), status::problem,
                    "the membership search for the sample failed: " + describe(last));
            }
        };
        one_list(s_.protected_groups, "protected_groups");
        one_list(cfg_.factors.two_methods_groups, "factors.two_methods_groups");
    }

    const daemon::config& cfg_;
    const ldap::directory_settings& s_;
    const std::optional<std::string>& user_;
    server_report& out_;
    std::unique_ptr<probe_session> session_;
    std::string principal_ = "ACCOUNT";
};

// ---- output -------------------------------------------------------------------------------

std::string_view kind_name(ldap::directory_kind k) {
    return k == ldap::directory_kind::openldap ? "openldap" : "active_directory";
}

json::object to_json(const std::string& config_file, const std::vector<directory_report>& dirs,
                     int problems, int warnings) {
    json::array directories;
    for (const auto& d : dirs) {
        const auto& s = *d.settings;
        json::array servers;
        for (const auto& server : d.servers) {
            json::array checks;
            for (const auto& c : server.checks) {
                json::object o = {{"check", c.name},
                                  {"subject", c.subject},
                                  {"status", status_name(c.result)},
                                  {"detail", c.detail}};
                json::array grant;
                for (const auto& g : c.grant) {
                    grant.emplace_back(g);
                }
                o["grant"] = std::move(grant);
                if (!c.certificate.empty()) {
                    o["certificate"] = c.certificate;
                }
                checks.emplace_back(std::move(o));
            }
            servers.emplace_back(json::object{{"uri", server.uri}, {"checks", std::move(checks)}});
        }
        directories.emplace_back(
            json::object{{"name", s.name},
                         {"kind", kind_name(s.kind)},
                         {"bind_dn", s.bind_dn},
                         {"user_base", s.user_base},
                         {"password_write",
                          s.password_write == ldap::password_write_mode::exop ? "exop" : "modify"},
                         {"unlock_on_reset", s.unlock_on_reset},
                         {"force_change_at_next_logon", s.force_change_at_next_logon},
                         {"servers", std::move(servers)}});
    }
    return {{"config", config_file},
            {"ok", problems == 0},
            {"problems", problems},
            {"warnings", warnings},
            {"directories", std::move(directories)}};
}

void print_text(std::ostream& out, const std::string& config_file,
                const std::vector<directory_report>& dirs, int problems, int warnings) {
    out << "pwresetctl doctor: " << config_file << '\n';
    for (const auto& d : dirs) {
        const auto& s = *d.settings;
        out << "directory" << (s.name.empty() ? "" : " \"" + s.name + "\"") << " ("
            << kind_name(s.kind);
        if (s.kind == ldap::directory_kind::openldap) {
            out << ", password_write "
                << (s.password_write == ldap::password_write_mode::exop ? "exop" : "modify");
        }
        out << (s.unlock_on_reset ? ", unlock_on_reset" : "")
            << (s.force_change_at_next_logon ? ", force_change_at_next_logon" : "") << ")\n";
        for (const auto& server : d.servers) {
            out << "  server " << server.uri << '\n';
            for (const auto& c : server.checks) {
                std::string label = c.name;
                if (!c.subject.empty() && c.name != "bind" && c.name != "sample_user") {
                    label += " " + c.subject;
                }
                std::string word(status_name(c.result));
                word.resize(9, ' ');
                out << "    " << word << label << ": " << c.detail << '\n';
                for (const auto& g : c.grant) {
                    out << "             grant: " << g << '\n';
                }
            }
        }
    }
    out << "summary: " << problems << (problems == 1 ? " problem, " : " problems, ") << warnings
        << (warnings == 1 ? " warning" : " warnings") << '\n';
}

int usage_error(const std::string& message) {
    std::cerr << "pwresetctl: doctor: " << message
              << "\nusage: pwresetctl doctor [-c CONFIG] [--user NAME] [--json]\n";
    return exit_usage;
}

}  // namespace

int doctor(std::span<char* const> args) {
    std::string config_file = "/etc/pwresetd/pwresetd.yaml";
    std::optional<std::string> user;
    bool as_json = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if ((arg == "-c" || arg == "--config") && i + 1 < args.size()) {
            config_file = args[++i];
        } else if (arg == "--user" && i + 1 < args.size()) {
            user = args[++i];
            if (user->empty()) {
                return usage_error("--user wants a name");
            }
        } else if (arg == "--json") {
            as_json = true;
        } else {
            return usage_error("unknown or incomplete option '" + std::string(arg) + "'");
        }
    }
    // The report says what failed; the library's own log lines would repeat it.
    log::set_level(log::level::error);
    daemon::config cfg;
    try {
        cfg = daemon::load_config(config_file);
    } catch (const daemon::config_error& e) {
        for (const auto& line : e.errors()) {
            std::cerr << line << '\n';
        }
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "pwresetctl: doctor: " << config_file << ": " << e.what() << '\n';
        return exit_usage;
    }

    std::vector<directory_report> reports;
    int problems = 0;
    int warnings = 0;
    for (const auto& s : cfg.directories) {
        directory_report d;
        d.settings = &s;
        // A `user@domain` / `DOMAIN\user` name is looked up, bare, only in the block that
        // lists the domain (as the daemon routes it); other blocks pick their own sample.
        std::optional<std::string> sample_user = user;
        if (user) {
            auto [domain, bare] = ldap::split_domain(*user);
            if (!domain.empty()) {
                sample_user = contains_ci(s.domains, domain) ? std::optional(bare) : std::nullopt;
            }
        }
        for (const auto& uri : s.uris) {
            server_report server;
            server.uri = uri;
            server_doctor(cfg, s, sample_user, server).run();
            for (const auto& c : server.checks) {
                problems += c.result == status::problem ? 1 : 0;
                warnings += c.result == status::warning ? 1 : 0;
            }
            d.servers.push_back(std::move(server));
        }
        reports.push_back(std::move(d));
    }
    if (as_json) {
        std::cout << json::serialize(to_json(config_file, reports, problems, warnings)) << '\n';
    } else {
        print_text(std::cout, config_file, reports, problems, warnings);
    }
    return problems == 0 ? exit_ok : exit_problem;
}

}  // namespace pwresetd::ctl
