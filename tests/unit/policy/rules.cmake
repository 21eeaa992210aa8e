# The password policy: rules, normalization, the banned list (fuzzy index, runs, score).
pwresetd_add_test(unit_policy
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/password_policy_test.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/banned_list_test.cpp
  LIBS pwresetd_policy
  LABELS unit)
