/* The pinned keys, for the operator (PROTOCOL.md §5.2): the control
 * methods trust.list, trust.verify, trust.pin and trust.forget. */
#ifndef CHATP2PD_CONTROL_TRUST_H
#define CHATP2PD_CONTROL_TRUST_H
#include "control/control.h"

/* {"pins": [{peer_id, fingerprint, first_seen, last_seen, verified}]} */
void m_trust_list(struct ctl_req *req, jval params);
/* {peer, fingerprint}: mark the pin verified; refused (mismatch) if the
 * fingerprint is not the pinned one. */
void m_trust_verify(struct ctl_req *req, jval params);
/* {peer, fingerprint}: pin a key (before first contact, or replacing the
 * pin); connections that proved another key for peer are closed. */
void m_trust_pin(struct ctl_req *req, jval params);
/* {peer}: the next key seen for peer is pinned on first use. */
void m_trust_forget(struct ctl_req *req, jval params);

#endif
