/* GET /metrics of a replica (metrics_page.c). */
#ifndef TALLY_REPLICA_METRICS_PAGE_H
#define TALLY_REPLICA_METRICS_PAGE_H

#include <h2o.h>

/** Answers @p req with every metric of the process in Prometheus text. */
void metrics_page_respond(h2o_req_t *req);

#endif
