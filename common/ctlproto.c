#include "ctlproto.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SOCK_NAME "chatp2pd.sock"
#define SYSTEM_SOCKET "/run/chatp2p/" SOCK_NAME

int ctl_default_socket(char *out, size_t len)
{
	const char *dir;
	int n;

	if ((dir = getenv("RUNTIME_DIRECTORY")) != NULL && *dir)
		n = snprintf(out, len, "%s/%s", dir, SOCK_NAME);
	else if (geteuid() == 0)
		n = snprintf(out, len, "%s", SYSTEM_SOCKET);
	else if ((dir = getenv("XDG_RUNTIME_DIR")) != NULL && *dir)
		n = snprintf(out, len, "%s/chatp2p/%s", dir, SOCK_NAME);
	else
		n = snprintf(out, len, "/tmp/chatp2p-%u/%s", (unsigned)getuid(), SOCK_NAME);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int ctl_client_socket(char *out, size_t len)
{
	struct stat st;

	if (ctl_default_socket(out, len) != 0)
		return -1;
	if (lstat(out, &st) != 0 && getenv("RUNTIME_DIRECTORY") == NULL &&
	    lstat(SYSTEM_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (strlen(SYSTEM_SOCKET) >= len)
			return -1;
		strcpy(out, SYSTEM_SOCKET);
	}
	return 0;
}
