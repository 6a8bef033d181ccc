/* DescribeCluster: the cluster id, the controller Metadata names, and the brokers Metadata gives
 * this client (the slots of its agent group, at their owners' addresses). */
#include "broker/broker_internal.h"

/* Kafka's MISMATCHED_ENDPOINT_TYPE: controllers were asked of a broker endpoint. */
#define KERR_MISMATCHED_ENDPOINT_TYPE 114
#define ENDPOINT_BROKERS 1

void handle_describe_cluster(struct broker *b, struct request *rq)
{
    struct describe_cluster_request *req = rq->body;
    struct describe_cluster_response *resp = RQ_ALLOC(rq, struct describe_cluster_response, 1);
    resp->error_message = (struct kstr){NULL, -1};
    resp->endpoint_type = ENDPOINT_BROKERS;
    resp->cluster_id = kstr_c(b->cfg->cluster_id);
    resp->controller_id = 0; /* as Metadata says */
    resp->cluster_authorized_operations = INT32_MIN; /* not computed */
    if (rq->hdr.api_version >= 1 && req->endpoint_type != ENDPOINT_BROKERS) {
        resp->error_code = KERR_MISMATCHED_ENDPOINT_TYPE;
        resp->error_message = kstr_c("The request was sent to an endpoint of type BROKER, not CONTROLLER.");
        resp->controller_id = -1;
        resp->brokers = RQ_ALLOC(rq, struct describe_cluster_response_broker, 0);
        request_respond(rq, resp);
        return;
    }
    struct metadata_response md = {0};
    metadata_fill_brokers(b, rq, &md);
    resp->brokers = RQ_ALLOC(rq, struct describe_cluster_response_broker, md.brokers_count);
    resp->brokers_count = md.brokers_count;
    for (int i = 0; i < md.brokers_count; i++)
        resp->brokers[i] = (struct describe_cluster_response_broker){md.brokers[i].node_id, md.brokers[i].host,
                                                                     md.brokers[i].port, md.brokers[i].rack};
    request_respond(rq, resp);
}
