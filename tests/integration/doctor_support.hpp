#pragma once
// What the `pwresetctl doctor` tests against real directories share (doctor_openldap_test.cpp,
// doctor_samba_test.cpp): a configuration for a lab, running the real pwresetctl binary,
// and a byte-for-byte snapshot of an entry with its operational attributes, read by the
// lab's administrator, to prove the doctor changed nothing. Passwords stay in 0600 files.
#include <sys/wait.h>

#include <boost/json.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/files.hpp"
#include "support/lab_fixture.hpp"
#include "support/shell.hpp"

namespace pwresetd::testing {

struct doctor_run {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// The directory block a test varies; the rest of the file is the minimal daemon config.
struct doctor_directory {
    std::string kind;
    std::vector<std::string> uris;
    std::string ca_file;
    std::string bind_dn;
    std::string password_file;
    std::string user_base;
    std::string user_filter;
    std::string extra;  // more `directory:` keys, each line indented by two spaces
};

inline std::filesystem::path write_doctor_config(const std::filesystem::path& dir,
                                                 const std::string& name,
                                                 const doctor_directory& d) {
    namespace fs = std::filesystem;
    const char* source = std::getenv("PWRESETD_SOURCE_DIR");
    const fs::path fixtures =
        fs::path(source != nullptr && *source != '\0' ? source : PWRESETD_DEFAULT_SOURCE_DIR) /
        "tests" / "fixtures" / "config";
    fs::path file = dir / (name + ".yaml");
    std::string uris;
    for (const auto& uri : d.uris) {
        uris += (uris.empty() ? "\"" : ", \"") + uri + "\"";
    }
    write_file(file,
               "listen:\n  - \"https://127.0.0.1:8443\"\n"
               "tls:\n  certificate: " +
                   (fixtures / "tls" / "server.crt").string() +
                   "\n  private_key: " + (fixtures / "tls" / "server.key").string() +
                   "\nclients:\n  - name: intranet\n"
                   "    api_key_sha256: "
                   "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n"
                   "    scopes: [reset]\n"
                   "directory:\n  kind: " +
                   d.kind + "\n  uris: [" + uris + "]\n  ca_file: " + d.ca_file +
                   "\n  bind_dn: \"" + d.bind_dn + "\"\n  bind_password_file: " + d.password_file +
                   "\n  user_base: \"" + d.user_base + "\"\n  user_filter: \"" + d.user_filter +
                   "\"\n" + d.extra + "state:\n  path: " + (dir / "state.db").string() +
                   "\nsecrets:\n  key_file: " + (dir / "secret.key").string() +
                   "\naudit:\n  file: " + (dir / "audit.jsonl").string() + "\n");
    return file;
}

// pwresetctl doctor ARGS, with stdout and stderr captured. The environment tries to weaken
// TLS (LDAPTLS_REQCERT=never): the doctor must ignore it, as the daemon does.
inline doctor_run run_doctor(const std::filesystem::path& dir, const std::string& args) {
    const std::filesystem::path out = dir / "doctor.out";
    const std::filesystem::path err = dir / "doctor.err";
    doctor_run r;
    r.exit_code =
        run_shell("env LDAPTLS_REQCERT=never " + shell_quote(PWRESETCTL_BINARY) + " doctor " +
                  args + " >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string()));
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
}

// Every attribute of the entry, user and operational ('*' '+', and the security
// descriptor where one is asked for), as the lab's administrator reads it, unwrapped.
inline std::string admin_snapshot(const lab_fixture& lab, const std::string& dn,
                                  const std::string& extra_attributes = "") {
    const std::filesystem::path out = lab.dir() / "snapshot.ldif";
    const int rc = run_shell(
        "env -u LDAPNOINIT LDAPTLS_REQCERT=demand LDAPTLS_CACERT=" + shell_quote(lab["LAB_CA"]) +
        " ldapsearch -x -o nettimeout=5 -H " + shell_quote(lab["LAB_LDAPS_URI"]) + " -D " +
        shell_quote(lab["LAB_ADMIN_DN"]) + " -y " + shell_quote(lab["LAB_ADMIN_PASSWORD_FILE"]) +
        " -LLL -o ldif-wrap=no -s base -b " + shell_quote(dn) + " '(objectClass=*)' '*' '+' " +
        extra_attributes + " >" + shell_quote(out.string()) + " 2>&1");
    std::string text = read_file(out);
    if (rc != 0) {
        throw std::runtime_error("ldapsearch as the lab administrator failed: " + text);
    }
    return text;
}

// The checks of the first server of the first directory in a --json report.
inline boost::json::array doctor_checks(const std::string& json_text) {
    const auto doc = boost::json::parse(json_text).as_object();
    return doc.at("directories")
        .as_array()
        .at(0)
        .as_object()
        .at("servers")
        .as_array()
        .at(0)
        .as_object()
        .at("checks")
        .as_array();
}

// The one check named `name` (with `subject`, when not empty); throws when absent.
inline boost::json::object find_check(const boost::json::array& checks, const std::string& name,
                                      const std::string& subject = "") {
    for (const auto& c : checks) {
        const auto& o = c.as_object();
        if (o.at("check").as_string() == name &&
            (subject.empty() || o.at("subject").as_string() == subject)) {
            return o;
        }
    }
    throw std::runtime_error("no check " + name + " " + subject + " in the report");
}

}  // namespace pwresetd::testing
