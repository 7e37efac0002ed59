/* Readiness of a replica (readiness.c): the load balancer's question, "can it count now";
 * liveness (/healthz) is only "is the process alive". */
#ifndef TALLY_REPLICA_READINESS_H
#define TALLY_REPLICA_READINESS_H

#include <h2o.h>

/** Returns 1 when the process is ready to take traffic (/readyz 200). */
int replica_is_ready(void);
/** Answers GET /readyz: 200 or 503, with what is and is not up. */
void readiness_respond(h2o_req_t *req);

#endif
