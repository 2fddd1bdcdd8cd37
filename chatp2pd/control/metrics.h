/* The node's counters and gauges as Prometheus/OpenMetrics text (control
 * "metrics", chatp2pctl metrics): what node_exporter's textfile collector
 * reads.  Names start with chatp2p_; counters end in _total. */
#ifndef CHATP2PD_METRICS_H
#define CHATP2PD_METRICS_H
#include "buf.h"

struct node;
struct control;

/* Append the exposition (ends with a newline) to out. */
void metrics_text(struct node *n, const struct control *ctl, struct buf *out);

#endif
