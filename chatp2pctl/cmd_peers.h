/* Peers and the rendezvous server: the peer table, connections, RTTs, reconnect, discover, register, unregister. */
#ifndef CHATP2PCTL_CMD_PEERS_H
#define CHATP2PCTL_CMD_PEERS_H
#include "cmd.h"

int c_peers(const struct opts *o, int argc, char **argv);
int c_conn(const struct opts *o, int argc, char **argv);
int c_rtt(const struct opts *o, int argc, char **argv);
int c_reconnect(const struct opts *o, int argc, char **argv);
int c_discover(const struct opts *o, int argc, char **argv);
int c_register(const struct opts *o, int argc, char **argv);
int c_unregister(const struct opts *o, int argc, char **argv);

#endif
