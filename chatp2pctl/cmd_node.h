/* The node itself: status, version, log level, reload, shutdown, readiness, methods, metrics, any method (call). */
#ifndef CHATP2PCTL_CMD_NODE_H
#define CHATP2PCTL_CMD_NODE_H
#include "cmd.h"

int c_status(const struct opts *o, int argc, char **argv);
int c_version(const struct opts *o, int argc, char **argv);
int c_log(const struct opts *o, int argc, char **argv);
int c_reload(const struct opts *o, int argc, char **argv);
int c_shutdown(const struct opts *o, int argc, char **argv);
int c_call(const struct opts *o, int argc, char **argv);
int c_wait_ready(const struct opts *o, int argc, char **argv);
int c_methods(const struct opts *o, int argc, char **argv);
int c_metrics(const struct opts *o, int argc, char **argv);
int c_logs(const struct opts *o, int argc, char **argv);

#endif
