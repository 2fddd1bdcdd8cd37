/* Message ids: UUID strings from libuuid. */
#ifndef CHATP2P_MSGID_H
#define CHATP2P_MSGID_H

#define MSGID_LEN 37 /* 36 chars + NUL */

void msgid_new(char out[MSGID_LEN]);

#endif
