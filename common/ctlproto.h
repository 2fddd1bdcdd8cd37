/* The control protocol shared by chatp2pd and chatp2pctl: JSON-RPC 2.0 over
 * a UNIX stream socket, one object per line.  Error codes and reasons are
 * stable (docs/control-protocol.md); the protocol grows only by adding
 * methods and fields, and CTL_PROTO_VERSION counts those additions. */
#ifndef CHATP2P_CTLPROTO_H
#define CHATP2P_CTLPROTO_H
#include <stddef.h>

#define CTL_PROTO_VERSION 1
/* Requests carry at most a chat payload (32 KiB) plus escaping and framing. */
#define CTL_MAX_LINE (256 * 1024)
/* Replies are longer: `peers` of a full table (65,536 peers at about 450
 * bytes each) is about 30 MB.  No reply of the daemon is longer than this. */
#define CTL_MAX_REPLY (64 * 1024 * 1024)

enum ctl_error_code {
	CTL_E_PARSE = -32700,          /* not JSON */
	CTL_E_INVALID_REQUEST = -32600, /* not a JSON-RPC request object */
	CTL_E_NO_METHOD = -32601,
	CTL_E_BAD_PARAMS = -32602,
	CTL_E_INTERNAL = -32603,
	CTL_E_DELIVERY = -32001,       /* unknown_peer, not_connected, ack_timeout */
	CTL_E_RENDEZVOUS = -32002,     /* the rendezvous server failed or refused */
	CTL_E_LIMIT = -32003,          /* too many controllers, line too long, output full */
	CTL_E_STOPPING = -32004,       /* the node is shutting down */
};

/* Default socket path: $RUNTIME_DIRECTORY/chatp2pd.sock (systemd), else
 * /run/chatp2p/chatp2pd.sock for root, else $XDG_RUNTIME_DIR/chatp2p/
 * chatp2pd.sock, else /tmp/chatp2p-UID/chatp2pd.sock.  -1 if too long. */
int ctl_default_socket(char *out, size_t len);
/* Where a controller looks: ctl_default_socket(), unless nothing is there
 * and the system service's socket exists (a chatp2p group member running
 * chatp2pctl as themselves).  -1 if too long. */
int ctl_client_socket(char *out, size_t len);

#endif
