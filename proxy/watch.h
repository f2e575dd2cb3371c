/*
 * watch: `egressd watch [FILE|-]`, for the people who tail the decision log
 * (issue 15).  It follows a log file (through rotation and truncation) or
 * standard input, groups the denials (watch_view.h), and shows them: a
 * screen redrawn in place on a terminal, or one plain line per denial when
 * standard output is not one (or with --plain).  With --alertmanager URL it
 * posts an alert per denial group to Alertmanager's v2 API, re-posts while
 * the group stays active and lets it resolve after a quiet period; a dead
 * Alertmanager never stops the reading (the alerts wait, with backoff, and
 * what had to be dropped is counted).  --once reads what is there, prints
 * the summary and exits 1 if there was any denial, 0 if none.
 */
#ifndef EGRESSD_WATCH_H
#define EGRESSD_WATCH_H

/* argv[0] is "watch".  The exit status. */
int watch_main(int argc, char **argv);

#endif
