#!/usr/bin/env bash
# A private OpenLDAP slapd (ppolicy, LDAPS + StartTLS) on loopback, in one folder.
#
#   tests/lab/openldap.sh start DIR   build and start it; writes DIR/lab.env (KEY=value)
#   tests/lab/openldap.sh stop DIR    stop it (never fails when already stopped)
#
# DIR/lab.env: LAB_DIR LAB_LDAP_URI LAB_LDAPS_URI LAB_CA LAB_BASE LAB_USER_BASE LAB_SVC_DN
# LAB_SVC_PASSWORD_FILE LAB_ADMIN_DN LAB_ADMIN_PASSWORD_FILE LAB_PID, and LAB_READONLY_DN
# LAB_READONLY_PASSWORD_FILE (svc-readonly: reads users and groups like the service account,
# but may write nothing; pwresetctl doctor's tests use it as an undelegated account).
# Demo users in ou=people have fixed passwords (alice, bob, carol, dave, erin); every other
# password is random per start. Facts this relies on: docs/LAB.md.
# Users get `write` (not `=w`) on their own userPassword: a self-service change sends
# oldPasswd, and slapd verifies it only with auth access (else 53 "unwilling to verify old
# password"); `write` includes auth.
set -euo pipefail

readonly BASE="dc=example,dc=test"
readonly PEOPLE="ou=people,${BASE}"
readonly SVC_DN="cn=svc-pwreset,ou=services,${BASE}"
readonly READONLY_DN="cn=svc-readonly,ou=services,${BASE}"
readonly ADMIN_DN="cn=admin,${BASE}"
readonly MODULE_DIR="/usr/lib/ldap"
readonly SCHEMA_DIR="/etc/ldap/schema"

readonly LAB_NAME="openldap.sh"
readonly LAB_PID_FILE="slapd.pid"
readonly LAB_COMM="slapd"
readonly LAB_PACKAGES="the slapd, ldap-utils, openssl and python3 packages"
# shellcheck source=tests/lab/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

hash_file() {
    slappasswd -n -h '{SSHA}' -T "$1"
}

make_certificates() {
    local dir=$1
    lab_certificates "${dir}" "${dir}/ca.crt" "${dir}/server.key" "${dir}/server.crt" \
        "pwresetd lab CA" localhost "IP:127.0.0.1,DNS:localhost"
}

# Two free loopback ports (both bound at once, so they differ), "P Q".
free_ports() {
    python3 - <<'EOF'
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])
EOF
}

write_config_ldif() {
    local dir=$1 admin_hash=$2
    cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ${dir}/slapd.pid
olcArgsFile: ${dir}/slapd.args
olcLogLevel: none
olcToolThreads: 1
olcTLSCACertificateFile: ${dir}/ca.crt
olcTLSCertificateFile: ${dir}/server.crt
olcTLSCertificateKeyFile: ${dir}/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: ${MODULE_DIR}
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://${SCHEMA_DIR}/core.ldif

include: file://${SCHEMA_DIR}/cosine.ldif

include: file://${SCHEMA_DIR}/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=Subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ${BASE}
olcRootDN: ${ADMIN_DN}
olcRootPW: ${admin_hash}
olcDbDirectory: ${dir}/data
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid,mail eq
olcDbIndex: member,uniqueMember eq
olcAccess: {0}to attrs=userPassword
  by dn.exact="${SVC_DN}" =w
  by self write
  by anonymous auth
  by * none
olcAccess: {1}to attrs=pwdAccountLockedTime,pwdReset
  by dn.exact="${SVC_DN}" write
  by self read
  by * none
olcAccess: {2}to dn.subtree="${PEOPLE}"
  by dn.exact="${SVC_DN}" read
  by dn.exact="${READONLY_DN}" read
  by self read
  by * none
olcAccess: {3}to dn.subtree="ou=groups,${BASE}"
  by dn.exact="${SVC_DN}" read
  by dn.exact="${READONLY_DN}" read
  by * none
olcAccess: {4}to dn.base="${BASE}"
  by dn.exact="${SVC_DN}" read
  by dn.exact="${READONLY_DN}" read
  by * none
olcAccess: {5}to *
  by self read
  by * none

dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {0}ppolicy
olcPPolicyDefault: cn=default,ou=policies,${BASE}
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: TRUE
EOF
}

# user UID_RDN_VALUE UID CN SN MAIL MOBILE PASSWORD_HASH [EXTRA_LINES] (under PARENT)
person() {
    local parent=$1 rdn=$2 uid=$3 cn=$4 sn=$5 mail=$6 mobile=$7 hash=$8 extra=${9:-}
    printf 'dn: %s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\ndisplayName: %s\n' \
        "${rdn}" "${parent}" "${uid}" "${cn}" "${sn}" "${cn}"
    [[ -n "${mail}" ]] && printf 'mail: %s\n' "${mail}"
    [[ -n "${mobile}" ]] && printf 'mobile: %s\n' "${mobile}"
    printf 'userPassword: %s\n' "${hash}"
    [[ -n "${extra}" ]] && printf '%s\n' "${extra}"
    printf '\n'
}

write_data_ldif() {
    local dir=$1 now
    now=$(date -u +%Y%m%d%H%M%SZ)
    local p="${dir}/passwords"
    cat <<EOF
dn: ${BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,${BASE}
objectClass: organizationalUnit
ou: people

dn: ou=more,ou=people,${BASE}
objectClass: organizationalUnit
ou: more

dn: ou=groups,${BASE}
objectClass: organizationalUnit
ou: groups

dn: ou=services,${BASE}
objectClass: organizationalUnit
ou: services

dn: ou=policies,${BASE}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,${BASE}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMinLength: 12
pwdInHistory: 5
pwdCheckQuality: 2
pwdMaxFailure: 3
pwdLockout: TRUE
pwdLockoutDuration: 0
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdSafeModify: FALSE

dn: cn=service,ou=policies,${BASE}
objectClass: device
objectClass: pwdPolicy
cn: service
pwdAttribute: userPassword
pwdLockout: FALSE
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdSafeModify: FALSE

dn: ${SVC_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: svc-pwreset
userPassword: $(hash_file "${dir}/svc-password")
pwdPolicySubentry: cn=service,ou=policies,${BASE}

dn: ${READONLY_DN}
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: svc-readonly
userPassword: $(hash_file "${dir}/readonly-password")
pwdPolicySubentry: cn=service,ou=policies,${BASE}

EOF
    person "${PEOPLE}" uid=alice alice "Alice Andersson" Andersson alice@example.test \
        +46701234567 "$(hash_file "${p}/alice")"
    person "${PEOPLE}" uid=bob bob "Bob Berg" Berg bob@example.test "" "$(hash_file "${p}/bob")"
    person "${PEOPLE}" uid=carol carol "Carol Carlsson" Carlsson carol@example.test \
        +46701234569 "$(hash_file "${p}/carol")" "pwdAccountLockedTime: ${now}"
    person "${PEOPLE}" uid=dave dave "Dave Dahl" Dahl dave@example.test "" \
        "$(hash_file "${p}/dave")" "pwdAccountLockedTime: 000001010000Z"
    person "${PEOPLE}" uid=erin erin "Erin Ek" Ek erin@example.test "" "$(hash_file "${p}/erin")"
    # Two entries with uid twin (ambiguous lookups).
    person "${PEOPLE}" uid=twin twin "Twin One" One twin1@example.test "" \
        "$(hash_file "${p}/twin")"
    person "ou=more,${PEOPLE}" uid=twin twin "Twin Two" Two twin2@example.test "" \
        "$(hash_file "${p}/twin")"
    # A uid made of filter metacharacters: only an exact, escaped lookup may find it.
    # shellcheck disable=SC1003 # a literal backslash, not an escaped quote
    person "${PEOPLE}" cn=meta 'st*r(x)\' "Meta Chars" Chars meta@example.test "" \
        "$(hash_file "${p}/meta")"
    cat <<EOF
dn: cn=admins,ou=groups,${BASE}
objectClass: groupOfNames
cn: admins
member: uid=erin,${PEOPLE}

dn: cn=staff,ou=groups,${BASE}
objectClass: groupOfNames
cn: staff
member: uid=alice,${PEOPLE}
member: uid=bob,${PEOPLE}

EOF
}

# Polls until an LDAPS search of the RootDSE answers, ~10 s at most.
wait_ready() {
    local dir=$1 uri=$2 pid=$3 i
    for ((i = 0; i < 200; i++)); do
        if LDAPTLS_CACERT="${dir}/ca.crt" LDAPTLS_REQCERT=demand \
            ldapsearch -x -H "${uri}" -b "" -s base -o nettimeout=2 namingContexts \
            >/dev/null 2>&1; then
            return 0
        fi
        alive "${pid}" || return 1
        sleep 0.05
    done
    return 1
}

cmd_start() {
    local dir=$1
    need slapd slapadd slappasswd ldapsearch openssl python3
    [[ -d "${MODULE_DIR}" ]] || die "${MODULE_DIR} missing (install slapd)"
    [[ -f "${SCHEMA_DIR}/core.ldif" ]] || die "${SCHEMA_DIR}/core.ldif missing (install slapd)"
    mkdir -p "${dir}" || die "cannot create ${dir}"
    dir=$(cd "${dir}" && pwd)
    cmd_stop "${dir}"
    start_guard "${dir}"
    export PATH="${PATH}:/usr/sbin"

    rm -rf "${dir}/slapd.d" "${dir}/data" "${dir}/passwords"
    mkdir -p "${dir}/slapd.d" "${dir}/data"
    (umask 077 && mkdir -p "${dir}/passwords")

    make_certificates "${dir}" || die "openssl failed: $(cat "${dir}/openssl.log")"

    random_password_file "${dir}/svc-password"
    random_password_file "${dir}/admin-password"
    random_password_file "${dir}/readonly-password"
    fixed_password_file "${dir}/passwords/alice" 'Alice-Old-Passw0rd!'
    fixed_password_file "${dir}/passwords/bob" 'Bob-Old-Passw0rd!'
    fixed_password_file "${dir}/passwords/carol" 'Carol-Old-Passw0rd!'
    fixed_password_file "${dir}/passwords/dave" 'Dave-Old-Passw0rd!'
    fixed_password_file "${dir}/passwords/erin" 'Erin-Old-Passw0rd!'
    random_password_file "${dir}/passwords/twin"
    random_password_file "${dir}/passwords/meta"

    write_config_ldif "${dir}" "$(hash_file "${dir}/admin-password")" >"${dir}/config.ldif"
    write_data_ldif "${dir}" >"${dir}/data.ldif"
    slapadd -n0 -F "${dir}/slapd.d" -l "${dir}/config.ldif" >"${dir}/slapadd.log" 2>&1 ||
        die "slapadd (cn=config) failed: $(cat "${dir}/slapadd.log")"
    slapadd -q -F "${dir}/slapd.d" -b "${BASE}" -l "${dir}/data.ldif" >>"${dir}/slapadd.log" 2>&1 ||
        die "slapadd (${BASE}) failed: $(cat "${dir}/slapadd.log")"

    local attempt ports port tls_port pid=""
    for ((attempt = 0; attempt < 3; attempt++)); do
        ports=$(free_ports) || die "python3 could not find free ports"
        read -r port tls_port <<<"${ports}"
        rm -f "${dir}/slapd.pid"
        if slapd -h "ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${tls_port}/" \
            -F "${dir}/slapd.d" >"${dir}/slapd.log" 2>&1; then
            # slapd daemonizes; the pid file appears right after.
            local i
            for ((i = 0; i < 100; i++)); do
                [[ -s "${dir}/slapd.pid" ]] && break
                sleep 0.02
            done
            pid=$(tr -d '[:space:]' <"${dir}/slapd.pid" 2>/dev/null || true)
            [[ -n "${pid}" ]] && break
        fi
    done
    [[ -n "${pid}" ]] || die "slapd did not start: $(cat "${dir}/slapd.log")"

    wait_ready "${dir}" "ldaps://127.0.0.1:${tls_port}" "${pid}" ||
        die "slapd (pid ${pid}) did not answer on ldaps://127.0.0.1:${tls_port} within 10 s"

    cat >"${dir}/lab.env.tmp" <<EOF
LAB_DIR=${dir}
LAB_LDAP_URI=ldap://127.0.0.1:${port}
LAB_LDAPS_URI=ldaps://127.0.0.1:${tls_port}
LAB_CA=${dir}/ca.crt
LAB_BASE=${BASE}
LAB_USER_BASE=${PEOPLE}
LAB_SVC_DN=${SVC_DN}
LAB_SVC_PASSWORD_FILE=${dir}/svc-password
LAB_ADMIN_DN=${ADMIN_DN}
LAB_ADMIN_PASSWORD_FILE=${dir}/admin-password
LAB_READONLY_DN=${READONLY_DN}
LAB_READONLY_PASSWORD_FILE=${dir}/readonly-password
LAB_PID=${pid}
EOF
    mv "${dir}/lab.env.tmp" "${dir}/lab.env"
    START_OK=1
    echo "openldap.sh: slapd pid ${pid} on ldap://127.0.0.1:${port} ldaps://127.0.0.1:${tls_port} (${dir}/lab.env)"
}

lab_main "$@"
