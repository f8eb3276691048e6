"""The Beat schedule as a release recorded it: one alarm per entry, and what a change does to it.

Pure functions over the release record's `beatSchedule` (each entry's task, schedule, period and
policy, reported by the image's `manage.py release_state`), so the alarms follow the entries the
running image schedules, not a copy of them in the stack config.
"""
