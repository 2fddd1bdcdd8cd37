#include "ctlproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SOCK_NAME "chatp2pd.sock"

int ctl_default_socket(char *out, size_t len)
{
	const char *dir;
	int n;

	if ((dir = getenv("RUNTIME_DIRECTORY")) != NULL && *dir)
		n = snprintf(out, len, "%s/%s", dir, SOCK_NAME);
	else if (geteuid() == 0)
		n = snprintf(out, len, "/run/chatp2p/%s", SOCK_NAME);
	else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && *dir)
		n = snprintf(out, len, "%s/chatp2p/%s", dir, SOCK_NAME);
	else
		n = snprintf(out, len, "/tmp/chatp2p-%u/%s", (unsigned)getuid(), SOCK_NAME);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}
