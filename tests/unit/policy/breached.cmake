# The breached-password set: compile, open, lookup, hostile files, and pwresetctl breached.
pwresetd_add_test(unit_breached
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/breached_set_test.cpp
  LIBS pwresetd_policy
  LABELS unit)
# Its pwresetctl cases run the built binary.
add_dependencies(unit_breached pwresetctl)
