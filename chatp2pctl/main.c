/* chatp2pctl: the control client of chatp2pd (grows with the control socket). */
#include <stdio.h>
#include <string.h>

#include "version.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("chatp2pctl %s\n", CHATP2P_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: chatp2pctl --version\n");
	return 3;
}
