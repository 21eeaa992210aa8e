# Every dependency is a Debian 12 package; scripts/install-deps installs them.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json)
find_package(OpenSSL 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LDAP REQUIRED IMPORTED_TARGET ldap lber)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(QRENCODE REQUIRED IMPORTED_TARGET libqrencode)
# GNU libunistring (libunistring-dev) has no pkg-config file: Unicode case folding and NFKC
# for usernames (daemon/username.cpp).
find_path(UNISTRING_INCLUDE_DIR unicase.h REQUIRED)
find_library(UNISTRING_LIBRARY unistring REQUIRED)
add_library(Unistring::unistring UNKNOWN IMPORTED)
set_target_properties(Unistring::unistring PROPERTIES
  IMPORTED_LOCATION "${UNISTRING_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${UNISTRING_INCLUDE_DIR}")
if(PWRESETD_TESTS)
  find_package(Catch2 2.13 REQUIRED)
endif()
