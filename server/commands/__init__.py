"""``lightbulb`` command families, one module each; :mod:`server.cli` parses and dispatches.

:mod:`.storage` (``bootstrap``, ``validate-schema``), :mod:`.check` (``check``,
the Nagios plugin), :mod:`.days` (``report``, ``maintenance``). The exit codes
every command shares are here: 0 success, 1 the job ran and found a problem
(schema drift, a storage failure), 2 the configuration or the command line is
wrong.
"""

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
